"""Sentry through real processes: a `syndicate worker` and a separate `syndicate beat`
sending to the stand-in Sentry, one deployment shared by every case (they run in order).

- 30 dead deliveries to each of two partners are exactly two issues (fingerprints), each
  event with its tags and attempt log;
- no secret, header value or signature is in any envelope, and no partner request carries
  `sentry-trace` or `baggage`;
- a traced delivery yields queue publish / process spans with the queue's name;
- the running beat gives ok check-ins; a stopped beat an error check-in;
- a CLI command that crashes reports it (with no database password in the report).
"""

import json
import os
import socket
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REDIS_BASE, Deployment, new_secret, wait_until, write_config
from tests.support.partner_server import PartnerServer
from tests.support.sentry_server import SentryServer
from tests.worker.delivery.conftest import _value, article

ARTICLES = 30
TOKEN = "Bearer alpha-partner-token-5f1c2b9e"
API_KEY = "alpha-api-key-77d0c1"
BOT_TOKEN = "7000000001:AAE-telegram-token-for-tests_0123"
SWEEP_MONITOR, POLL_MONITOR = "syndicate-sweep-due-deliveries", "syndicate-poll-due-sources"
pytestmark = pytest.mark.timeout(240)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory, redis_db):
    import redis

    root = tmp_path_factory.mktemp("sentry-deployment")
    sentry = SentryServer().start()
    alpha = PartnerServer(new_secret()).start()
    alpha.default = (503, {}, b'{"error":"down for maintenance"}')
    beta_secret = new_secret()
    redis_url = f"{REDIS_BASE}/{redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    partners = [
        {"name": "alpha", "url": alpha.url, "secret": alpha.secret, "allow_private": True, "retry_schedule": ["100ms"],
         "timeout": "2s", "headers": {"Authorization": TOKEN, "X-Api-Key": API_KEY}},
        {"name": "beta", "url": f"http://127.0.0.1:{closed_port()}/hooks", "secret": beta_secret,
         "allow_private": True, "retry_schedule": ["100ms"], "timeout": "2s"},
    ]
    config = write_config(root / "syndication.toml", extra="\n".join(
        ["[[partners]]\n" + "\n".join(f"{k} = {_value(v)}" for k, v in p.items()) for p in partners]
        + [f'[[channels]]\nname = "tg"\ntype = "telegram"\ntoken = "{BOT_TOKEN}"\nchat_id = "@lnn_news"']))
    env = dict(os.environ)
    env.update({
        "REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{root}/store.db", "FEEDS_DIR": str(root / "feeds"),
        "SYNDICATE_CONFIG": str(config), "SYNDICATE_SWEEP_INTERVAL": "1",
        "SYNDICATE_BEAT_SCHEDULE": str(root / "beat-schedule"), "SYNDICATE_SOFT_SHUTDOWN": "2",
        "PYTHONUNBUFFERED": "1", "SENTRY_DSN": sentry.dsn, "SENTRY_ENVIRONMENT": "ci",
        "SENTRY_TRACES_SAMPLE_RATE": "1.0", "SYNDICATE_HEARTBEAT_INTERVAL": "1",
        "SYNDICATE_BREAKER_THRESHOLD": "100000",
    })
    deployment = Deployment(root, env, config, env["DATABASE_URL"])
    deployment.syndicate("migrate", check=True)
    worker = deployment.start("worker", "--concurrency", "2", "--loglevel", "INFO", name="worker")
    wait_until(lambda: b"ready." in Path(worker.log_path).read_bytes() or worker.poll() is not None, 60,
               "worker to start")
    assert worker.poll() is None, deployment.log(worker)
    beat = deployment.start("beat", name="beat")
    yield {"deployment": deployment, "sentry": sentry, "alpha": alpha, "beat": beat, "worker": worker,
           "secrets": [alpha.secret, beta_secret, TOKEN, TOKEN.split()[1], API_KEY, BOT_TOKEN]}
    deployment.stop_all()
    alpha.stop()
    sentry.stop()


def dead_events(sentry) -> list[dict]:
    return [e for e in sentry.events() if (e.get("fingerprint") or [""])[0] == "delivery-dead"]


def test_dead_deliveries_are_one_issue_per_partner_with_their_context(world):
    deployment, sentry = world["deployment"], world["sentry"]
    path = deployment.root / "articles.json"
    path.write_text(json.dumps([article(n) for n in range(ARTICLES)]))
    deployment.syndicate("ingest", str(path), check=True)
    wait_until(lambda: len(dead_events(sentry)) >= 2 * ARTICLES, 120, "every delivery to die and be reported")
    events = dead_events(sentry)
    assert Counter(tuple(e["fingerprint"]) for e in events) == {
        ("delivery-dead", "alpha", "http-5xx"): ARTICLES, ("delivery-dead", "beta", "connection"): ARTICLES}
    for event in events:
        tags, delivery = event["tags"], event["contexts"]["delivery"]
        assert tags["destination"] == event["fingerprint"][1] and tags["destination_type"] == "partner"
        assert tags["article_id"].startswith("web:story-") and tags["event_type"] == "article.published"
        assert tags["attempt"] == "2" and tags["source"]
        assert tags.get("http_status") == ("503" if tags["destination"] == "alpha" else None)
        assert [a["status_code"] for a in delivery["attempt_log"]] == (
            [503, 503] if tags["destination"] == "alpha" else [None, None])
        assert all(a["duration_ms"] is not None for a in delivery["attempt_log"])
        assert delivery["webhook_id"].startswith("msg_") and delivery["article_url"].startswith("https://")
        assert delivery["article_title"] and event["release"].startswith("syndicate@")
        assert event["environment"] == "ci" and not event["_dropped_tags"]
    assert not any("log_record" in json.dumps(e) and "stage=dead" in json.dumps(e.get("logentry", {}))
                   for e in sentry.events()), "the dead-delivery log lines are breadcrumbs, not events"


def test_no_secret_reaches_sentry_and_no_trace_header_reaches_a_partner(world):
    sentry, alpha = world["sentry"], world["alpha"]
    assert len(alpha.received) >= 2 * ARTICLES
    for request in alpha.received:
        assert "sentry-trace" not in request.headers and "baggage" not in request.headers
        assert request.headers["authorization"] == TOKEN  # the partner still gets its own headers
    everything = sentry.everything()
    signatures = {r.headers["webhook-signature"] for r in alpha.received}
    for value in [*world["secrets"], *signatures]:
        assert value not in everything


def test_traced_deliveries_show_queue_publish_and_process_spans(world):
    sentry = world["sentry"]
    spans = [s for t in sentry.transactions() for s in t.get("spans", [])]
    published = [s for s in spans if s["op"] == "queue.publish" and s["description"] == "tasks.deliver.deliver_batch"]
    processed = [s for s in spans if s["op"] == "queue.process" and s["description"] == "tasks.deliver.deliver_batch"]
    assert published and processed
    assert all(s["data"]["messaging.destination.name"] == "deliver" and s["data"]["messaging.message.id"]
               for s in published + processed)
    assert all("messaging.message.retry.count" in s["data"] for s in published + processed)
    assert all(s["data"]["messaging.message.receive.latency"] >= 0 for s in processed)


def test_running_beat_checks_in_ok_and_a_stopped_beat_gives_an_error_check_in(world):
    sentry, deployment = world["sentry"], world["deployment"]

    def statuses(slug):
        return [c["status"] for c in sentry.check_ins() if c["monitor_slug"] == slug]

    wait_until(lambda: "ok" in statuses(SWEEP_MONITOR) and "ok" in statuses(POLL_MONITOR), 30, "ok check-ins")
    assert not sentry.dropped, [d.why for d in sentry.dropped]
    deployment.stop(world["beat"])
    seen = {slug: len(statuses(slug)) for slug in (SWEEP_MONITOR, POLL_MONITOR)}
    # Each schedule goes stale after its own period, so the two errors need not come in
    # the same heartbeat (CI once saw the sweep's error while the poll's were still ok).
    for slug in (SWEEP_MONITOR, POLL_MONITOR):
        wait_until(lambda slug=slug: "error" in statuses(slug)[seen[slug]:], 60, f"an error check-in for {slug} "
                   "after beat stopped")


def test_a_crashing_cli_command_is_reported_without_its_database_password(world):
    deployment, sentry = world["deployment"], world["sentry"]
    env = dict(deployment.env, DATABASE_URL="postgresql+psycopg://postgres:db-pass-93af@127.0.0.1:"
                                            f"{closed_port()}/syndicate")
    crashed = Deployment(deployment.root, env, deployment.config, env["DATABASE_URL"])
    result = crashed.syndicate("deliveries")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "reported to Sentry as" in result.stderr and "db-pass-93af" not in result.stderr
    wait_until(lambda: any(e["tags"].get("command") == "deliveries" for e in sentry.events()), 10,
               "the crash report")
    assert "db-pass-93af" not in sentry.everything()
