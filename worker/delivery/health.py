"""Destination fairness and health, shared by every worker through Redis. Keys name a
destination as "<kind>:<name>" (partner:acme, channel:mastodon-main).

- `RateLimiter`: a per-destination GCRA limit ("20/s", and a channel's daily cap), taken
  in bulk by a Lua script (one round trip for a whole batch) on Redis's clock, so all
  workers share it.
- `CircuitBreaker`: a destination that failed N attempts in a row (default 10) with
  signs of ill health (5xx, timeouts, connection errors) is paused for a cool-off;
  after it, one half-open probe is let through; success closes the circuit, failure
  reopens it with a doubled cool-off (up to a cap).
- `Pacer`: a destination that asked us to slow down (429 or 503 with Retry-After) is
  left alone until the time it gave, by every worker; pacing never counts toward the
  breaker, and a paused destination's probe waits for the pause to end.

All are health, not truth: if Redis loses them (a restart), the worst case is a
destination being tried again a little early. What must survive lives in the store
(delivery rows, and `destination_state` for one disabled by policy or an operator).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from config.tunables import tunables

PREFIX = "syndicate:dest:"

# GCRA: KEYS[1] = the partner's theoretical arrival time (ms); ARGV = emission interval (ms),
# burst tolerance (ms), tokens wanted. Returns {granted, ms until the next token}.
_GCRA = """
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local granted = math.floor((now + tolerance - tat) / interval) + 1
if granted < 0 then granted = 0 end
if granted > wanted then granted = wanted end
tat = tat + granted * interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tolerance + interval * 2 + 1000))
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
return {granted, wait}
"""


class RateLimiter:
    def __init__(self, client: redis.Redis, clock=None):
        """`clock` (epoch seconds) is for tests; by default the limit runs on Redis's clock."""
        self.client = client
        self.clock = clock
        self._script = client.register_script(_GCRA)

    def take(self, partner: str, rate: tuple[int, float], wanted: int) -> tuple[int, float]:
        """Up to `wanted` sends allowed now for this partner, and seconds until the next one is."""
        count, per = rate
        interval_ms = per * 1000.0 / count
        # Allow a burst of one period's worth (a "20/s" partner may get 20 at once, then 1 per 50 ms).
        tolerance_ms = interval_ms * (count - 1)
        args = [interval_ms, tolerance_ms, wanted]
        if self.clock is not None:
            args.append(int(self.clock() * 1000))
        granted, wait_ms = self._script(keys=[PREFIX + partner + ":rate"], args=args)
        return int(granted), float(wait_ms) / 1000.0


@dataclass(frozen=True)
class BreakerState:
    state: str  # closed | open | half-open
    failures: int
    open_until: float | None
    cooloff: float


class CircuitBreaker:
    def __init__(self, client: redis.Redis, threshold: int | None = None, cooloff: float | None = None,
                 cooloff_max: float | None = None):
        t = tunables()
        self.client = client
        self.threshold = t.breaker_threshold if threshold is None else threshold
        self.cooloff = t.breaker_cooloff if cooloff is None else cooloff
        self.cooloff_max = t.breaker_cooloff_max if cooloff_max is None else cooloff_max

    def _keys(self, partner: str) -> tuple[str, str, str, str]:
        base = PREFIX + partner
        return base + ":failures", base + ":open_until", base + ":cooloff", base + ":probe"

    def state(self, partner: str, now: float | None = None) -> BreakerState:
        return self.states([partner], now)[partner]

    def states(self, partners: list[str], now: float | None = None) -> dict[str, BreakerState]:
        """Every partner's state in one round trip."""
        now = time.time() if now is None else now
        keys = [k for p in partners for k in self._keys(p)[:3]]
        values = self.client.mget(keys) if keys else []
        return {p: self._state(*values[i * 3:i * 3 + 3], now) for i, p in enumerate(partners)}

    def _state(self, failures, open_until, cooloff, now: float) -> BreakerState:
        failures = int(failures or 0)
        cooloff_s = float(cooloff or self.cooloff)
        if open_until is None:
            return BreakerState("closed", failures, None, cooloff_s)
        until = float(open_until)
        return BreakerState("open" if until > now else "half-open", failures, until, cooloff_s)

    def admit(self, partner: str, wanted: int, probe_ttl: float, now: float | None = None,
              state: BreakerState | None = None) -> tuple[int, float]:
        """How many sends the breaker lets through now (all, none, or one probe), and, when
        it holds some back, seconds until it is worth asking again."""
        st = state or self.state(partner, now)
        if st.state == "closed":
            return wanted, 0.0
        now = time.time() if now is None else now
        if st.state == "open":
            return 0, st.open_until - now
        # Half-open: exactly one worker gets to probe; the rest wait for its answer.
        probe_key = self._keys(partner)[3]
        if self.client.set(probe_key, "1", nx=True, px=int(probe_ttl * 1000)):
            return 1, probe_ttl
        ttl = self.client.pttl(probe_key)
        return 0, max(ttl, 500) / 1000.0

    def record_many(self, results: dict[str, tuple[int, int]], now: float | None = None) -> dict[str, str]:
        """Count a batch's (successes, failures) per partner; returns the partners whose circuit
        changed ("opened" or "closed"). The usual case, all good, is one round trip."""
        changes: dict[str, str] = {}
        healthy = [name for name, (ok, _) in results.items() if ok]
        if healthy:
            # Any success means the endpoint works: close and forget the streak.
            pipe = self.client.pipeline(transaction=False)
            for name in healthy:
                failures_key, open_key, cooloff_key, probe_key = self._keys(name)
                pipe.exists(open_key)
                pipe.delete(failures_key, open_key, cooloff_key, probe_key)
            answers = pipe.execute()
            changes.update({name: "closed" for name, was_open in zip(healthy, answers[::2], strict=True) if was_open})
        for name, (ok, failed) in results.items():
            if not ok and failed:
                change = self.record(name, 0, failed, now)
                if change:
                    changes[name] = change
        return changes

    def record(self, partner: str, successes: int, failures: int, now: float | None = None) -> str | None:
        """Count one partner's results; returns "opened" or "closed" when the circuit changed."""
        if successes:
            return self.record_many({partner: (successes, 0)}, now).get(partner)
        failures_key, open_key, cooloff_key, probe_key = self._keys(partner)
        now = time.time() if now is None else now
        if not failures:
            return None
        pipe = self.client.pipeline()
        pipe.incrby(failures_key, failures)
        pipe.get(open_key)
        pipe.get(cooloff_key)
        count, open_until, cooloff = pipe.execute()
        if open_until is not None:
            if float(open_until) <= now:
                # A failed half-open probe: open again, for twice as long.
                next_cooloff = min(float(cooloff or self.cooloff) * 2, self.cooloff_max)
                self.client.set(open_key, now + next_cooloff)
                self.client.set(cooloff_key, next_cooloff)
                self.client.delete(probe_key)
                return "opened"
            return None
        if count >= self.threshold:
            # SET NX: when several workers cross the threshold together, one opens it.
            if self.client.set(open_key, now + self.cooloff, nx=True):
                self.client.set(cooloff_key, self.cooloff)
                return "opened"
        return None

    def reset(self, partner: str) -> None:
        self.client.delete(*self._keys(partner))


# KEYS[1] = the pause's end (epoch seconds); ARGV = new end, its expiry in ms. Never shortens.
_EXTEND_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
"""


class Pacer:
    """Destinations paused until a time they asked for (Retry-After), shared by all workers."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._extend = client.register_script(_EXTEND_PAUSE)

    @staticmethod
    def _key(destination: str) -> str:
        return PREFIX + destination + ":paused_until"

    def pause(self, destination: str, until: float, now: float | None = None) -> None:
        """Pause until `until` (epoch seconds), never shortening a longer pause."""
        now = time.time() if now is None else now
        if until <= now:
            return
        # One atomic step: two workers pausing at once keep the later time.
        self._extend(keys=[self._key(destination)], args=[until, int((until - now) * 1000) + 1000])

    def paused_until(self, destinations: list[str], now: float | None = None) -> dict[str, float]:
        """The destinations paused now, with when their pause ends (one round trip)."""
        now = time.time() if now is None else now
        if not destinations:
            return {}
        values = self.client.mget([self._key(d) for d in destinations])
        return {d: float(v) for d, v in zip(destinations, values, strict=True) if v is not None and float(v) > now}

    def clear(self, destination: str) -> None:
        self.client.delete(self._key(destination))
