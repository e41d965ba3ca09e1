"""The beat scheduler: celery-redbeat (schedule and a lock in Redis, so exactly one beat
is active however many are started), made to ride out a Redis restart.

RedBeat's `tick` talks to Redis (extending the lock, reading due entries); when Redis
goes away it raises, and Celery's beat service — embedded in `syndicate run` or alone in
`syndicate beat` — exits. Without beat nothing sweeps, so deliveries whose messages
Redis lost would wait for a restart by hand. Here a failed tick is logged and retried a
few seconds later, a lock lost in the restart is taken again (or, if another beat
took it meanwhile, this one waits as a standby), and a schedule lost with Redis's data
is written again from the configuration.
"""

from __future__ import annotations

import logging

import redis
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, RedBeatScheduler, get_redis

log = logging.getLogger("syndicate.beat")

# Seconds between tries while Redis does not answer.
RETRY = 2.0


class ResilientRedBeatScheduler(RedBeatScheduler):
    def _take_lock(self) -> bool:
        """Take the beat lock if nobody holds it; True when this beat holds it now."""
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        if lock.acquire(blocking=False):
            self.lock = lock
            log.warning("beat: holds the schedule lock again")
            return True
        return False

    def tick(self, min=min, **kwargs):
        try:
            if self.lock_key and (self.lock is None or not self.lock.owned()):
                # Lost in a Redis restart (or never taken: Redis was down at start).
                if not self._take_lock():
                    return self.max_interval  # another beat is active: stay standby
            if not get_redis(self.app).exists(self.app.redbeat_conf.schedule_key):
                # Redis came back without the schedule (restarted empty): write it again.
                log.warning("beat: the schedule was gone from Redis; writing it again")
                self.setup_schedule()
            return super().tick(min=min, **kwargs)
        except redis.exceptions.LockError:
            log.warning("beat: lost the schedule lock; taking it again when it is free")
            self.lock = None
            return RETRY
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            log.warning("beat: Redis is not answering (%s); the schedule resumes when it is back",
                        type(exc).__name__)
            return RETRY

    def close(self):
        try:
            super().close()
        except (redis.exceptions.RedisError, OSError):
            log.warning("beat: could not release the schedule lock (Redis away); it expires by itself")
