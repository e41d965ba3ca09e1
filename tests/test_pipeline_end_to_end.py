"""The whole pipeline on real components: `syndicate run` (Celery worker + beat) on Redis,
a SQLite or PostgreSQL store, and a stand-in partner verifying signatures."""

import json
import time

import feedparser
from sqlalchemy import select

from tests.conftest import REPO, wait_until
from worker.articles import parse_article
from worker.pipeline import record_article
from worker.store import DeliveryRow, Store

EXAMPLE_FILE = REPO / "examples" / "article.json"
EXAMPLE = json.loads(EXAMPLE_FILE.read_text())


def statuses(deployment, article_id):
    report = json.loads(deployment.syndicate("status", article_id, "--json", check=True).stdout)
    return {(d["kind"], d["destination"], d["event"]): d for d in report["deliveries"]}


def test_an_ingested_article_reaches_partner_and_feeds_once(running, partner, partner_secret):
    # when the article is ingested
    out = running.syndicate("ingest", str(EXAMPLE_FILE), check=True)
    assert "article.published" in out.stdout

    # then the partner gets one verified article.published within seconds
    partner.wait_for(lambda got: len(got) >= 1, timeout=20)
    [message] = partner.received
    assert message.verified, message.error
    assert message.message["type"] == "article.published"
    assert message.message["data"]["title"] == EXAMPLE["title"]

    # and the story is in both feed files of each feed that holds it
    for name in ("all", "world"):
        wait_until(lambda: (running.feeds_dir / f"{name}.atom").exists(), 20, f"{name}.atom")
        for ext in ("rss", "atom"):
            parsed = feedparser.parse((running.feeds_dir / f"{name}.{ext}").read_bytes())
            assert [e.title for e in parsed.entries] == [EXAMPLE["title"]]

    # and status shows every delivery made
    report = wait_until(lambda: (s := statuses(running, EXAMPLE["id"])) and
                        all(d["status"] == "delivered" for d in s.values()) and s, 20, "deliveries to be delivered")
    assert set(report) == {("partner", "acme", "article.published"), ("feed", "all", "article.published"),
                           ("feed", "world", "article.published")}

    # when the same file is ingested again, nothing is sent
    again = running.syndicate("ingest", str(EXAMPLE_FILE), check=True)
    assert "unchanged" in again.stdout
    time.sleep(3)
    assert len(partner.received) == 1

    # and the partner's secret appeared in no log line or status output
    status_text = running.syndicate("status", EXAMPLE["id"]).stdout + running.syndicate("status", EXAMPLE["id"], "--json").stdout
    logs = "".join(running.log(p) for p in running.processes)
    assert "stage=delivered partner=acme" in logs
    assert partner_secret not in logs and partner_secret.removeprefix("whsec_") not in logs
    assert partner_secret not in status_text


def test_an_update_and_a_withdrawal_each_reach_the_partner(running, partner, tmp_path):
    running.syndicate("ingest", str(EXAMPLE_FILE), check=True)
    partner.wait_for(lambda got: len(got) == 1)
    corrected = tmp_path / "corrected.json"
    corrected.write_text(json.dumps(dict(EXAMPLE, title="Putin and Sharaa meet at the Kremlin")))
    running.syndicate("ingest", str(corrected), check=True)
    partner.wait_for(lambda got: len(got) == 2)
    withdrawn = tmp_path / "withdrawn.json"
    withdrawn.write_text(json.dumps(dict(EXAMPLE, status="unpublished")))
    running.syndicate("ingest", str(withdrawn), check=True)
    got = partner.wait_for(lambda got: len(got) == 3)
    assert [r.message["type"] for r in got] == ["article.published", "article.updated", "article.unpublished"]
    assert len({r.webhook_id for r in got}) == 3
    # the withdrawn story leaves the feed
    wait_until(lambda: not feedparser.parse((running.feeds_dir / "all.rss").read_bytes()).entries, 20,
               "the withdrawn story to leave the feed")


def test_a_failed_delivery_is_retried_with_the_same_message_id(running, partner):
    partner.plan.extend([(503, {}, b"down"), (500, {}, b"still down")])
    running.syndicate("ingest", str(EXAMPLE_FILE), check=True)
    got = partner.wait_for(lambda got: len(got) == 3, timeout=30)
    assert [r.verified for r in got] == [True, True, True]
    assert len({r.webhook_id for r in got}) == 1
    wait_until(lambda: statuses(running, EXAMPLE["id"])[("partner", "acme", "article.published")]["status"]
               == "delivered", 20, "delivered")
    assert statuses(running, EXAMPLE["id"])[("partner", "acme", "article.published")]["attempts"] == 3


def test_rows_committed_but_never_enqueued_are_delivered_by_the_sweep(deployment, partner):
    # given an article stored with its deliveries, as if the process died before enqueueing
    from config import load_config

    deployment.syndicate("migrate", check=True)
    store = Store(deployment.database_url)
    with store.session() as s:
        rec = record_article(s, parse_article(EXAMPLE, "t"), load_config(deployment.config))
    store.dispose()
    assert partner.received == []

    # when a worker starts (with a short re-enqueue delay so the test need not wait a minute)
    deployment.env["SYNDICATE_REQUEUE_AFTER"] = "2"
    deployment.start("run", "--concurrency", "2")

    # then the sweep finds the due rows and they are delivered
    got = partner.wait_for(lambda got: len(got) == 1, timeout=60)
    assert got[0].verified and got[0].message["data"]["id"] == EXAMPLE["id"]
    wait_until(lambda: (running_rows := _rows(deployment)) and all(r.status == "delivered" for r in running_rows),
               30, "all rows delivered")
    assert rec.partner_deliveries


def _rows(deployment):
    store = Store(deployment.database_url)
    try:
        with store.session() as s:
            return s.scalars(select(DeliveryRow)).all()
    finally:
        store.dispose()


def test_bad_input_files_are_named_and_good_ones_still_go_through(running, partner, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(EXAMPLE, id="web:bad", published_at="last tuesday")))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = running.syndicate("ingest", str(bad), str(broken), str(EXAMPLE_FILE))
    assert result.returncode == 1
    assert f"{bad}" in result.stderr and "published_at" in result.stderr
    assert f"{broken}" in result.stderr and "not valid JSON" in result.stderr
    got = partner.wait_for(lambda got: len(got) == 1)
    assert got[0].message["data"]["id"] == EXAMPLE["id"]


def test_ingest_reads_stdin(running, partner):
    result = running.syndicate("ingest", "-", input=EXAMPLE_FILE.read_text())
    assert result.returncode == 0, result.stderr
    partner.wait_for(lambda got: len(got) == 1)
