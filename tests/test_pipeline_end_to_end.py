"""The whole pipeline on real components: `syndicate run` (Celery worker + beat) on Redis,
a PostgreSQL store, and a stand-in partner verifying signatures.

One running deployment serves the module (starting `syndicate run` is the slow part);
each case ingests stories of its own and looks only at its own messages. The SQLite
store's part in this is covered in process by the pipeline and delivery tests."""

import json

import feedparser
import pytest
from sqlalchemy import select

from tests.conftest import REPO, wait_until
from worker.articles import parse_article
from worker.pipeline import record_article
from worker.store import DeliveryRow, Store

pytestmark = pytest.mark.slow

EXAMPLE_FILE = REPO / "examples" / "article.json"
EXAMPLE = json.loads(EXAMPLE_FILE.read_text())


@pytest.fixture(autouse=True)
def only_valid_requests(module_partner):
    """Every case ends with the partner having seen only requests a real receiver accepts."""
    yield
    module_partner.assert_only_valid()


def story(name: str, **changes) -> dict:
    return dict(EXAMPLE, id=f"web:{name}", url=f"https://london-news-net.example/world/{name}/", **changes)


def write(d, data, name: str):
    path = d.root / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def messages(partner, article_id):
    return [r for r in partner.verified() if r.message["data"]["id"] == article_id]


def statuses(deployment, article_id):
    report = json.loads(deployment.syndicate("status", article_id, "--json", check=True).stdout)
    return {(d["kind"], d["destination"], d["event"]): d for d in report["deliveries"]}


def feed_titles(d, name, ext):
    return [e.title for e in feedparser.parse((d.feeds_dir / f"{name}.{ext}").read_bytes()).entries]


def test_an_ingested_article_reaches_partner_and_feeds_once(module_running, module_partner):
    d, partner = module_running, module_partner
    path = write(d, story("first", title="First story through the pipeline"), "first")
    # when the article is ingested
    out = d.syndicate("ingest", str(path), check=True)
    assert "article.published" in out.stdout

    # then the partner gets one verified article.published within seconds
    partner.wait_for(lambda _: messages(partner, "web:first"), timeout=20)
    [message] = messages(partner, "web:first")
    assert message.message["type"] == "article.published"
    assert message.message["data"]["title"] == "First story through the pipeline"

    # and the story is once in both feed files of each feed that holds it
    for name in ("all", "world"):
        for ext in ("rss", "atom"):
            wait_until(lambda: (d.feeds_dir / f"{name}.{ext}").exists()
                       and "First story through the pipeline" in feed_titles(d, name, ext), 20, f"{name}.{ext}")
            assert feed_titles(d, name, ext).count("First story through the pipeline") == 1

    # and status shows every delivery made
    report = wait_until(lambda: (s := statuses(d, "web:first")) and
                        all(x["status"] == "delivered" for x in s.values()) and s, 20, "deliveries to be delivered")
    assert set(report) == {("partner", "acme", "article.published"), ("feed", "all", "article.published"),
                           ("feed", "world", "article.published")}

    # when the same file is ingested again, nothing is sent: not by the ingest, nor by the sweeps after it
    again = d.syndicate("ingest", str(path), check=True)
    assert "unchanged" in again.stdout
    d.wait_for_sweeps(2)
    assert len(messages(partner, "web:first")) == 1

    # and the partner's secret appeared in no log line or status output
    status_text = d.syndicate("status", "web:first").stdout + d.syndicate("status", "web:first", "--json").stdout
    logs = "".join(d.log(p) for p in d.processes)
    assert "stage=delivered partner=acme" in logs
    assert partner.secret not in logs and partner.secret.removeprefix("whsec_") not in logs
    assert partner.secret not in status_text


def test_an_update_and_a_withdrawal_each_reach_the_partner(module_running, module_partner):
    d, partner = module_running, module_partner
    d.syndicate("ingest", str(write(d, story("changing"), "changing")), check=True)
    partner.wait_for(lambda _: len(messages(partner, "web:changing")) == 1)
    corrected = story("changing", title="Putin and Sharaa meet at the Kremlin, corrected")
    d.syndicate("ingest", str(write(d, corrected, "corrected")), check=True)
    partner.wait_for(lambda _: len(messages(partner, "web:changing")) == 2)
    wait_until(lambda: "Putin and Sharaa meet at the Kremlin, corrected" in feed_titles(d, "all", "rss"), 20,
               "the correction in the feed")
    d.syndicate("ingest", str(write(d, story("changing", status="unpublished"), "withdrawn")), check=True)
    partner.wait_for(lambda _: len(messages(partner, "web:changing")) == 3)
    got = messages(partner, "web:changing")
    assert [r.message["type"] for r in got] == ["article.published", "article.updated", "article.unpublished"]
    assert len({r.webhook_id for r in got}) == 3
    # the withdrawn story leaves the feed
    wait_until(lambda: "Putin and Sharaa meet at the Kremlin, corrected" not in feed_titles(d, "all", "rss"), 20,
               "the withdrawn story to leave the feed")


def test_a_failed_delivery_is_retried_with_the_same_message_id(module_running, module_partner):
    d, partner = module_running, module_partner
    partner.plan.extend([(503, {}, b"down"), (500, {}, b"still down")])
    d.syndicate("ingest", str(write(d, story("retried"), "retried")), check=True)
    partner.wait_for(lambda _: len(messages(partner, "web:retried")) == 3, timeout=30)
    got = messages(partner, "web:retried")
    assert [r.status for r in got] == [503, 500, 200]
    assert len({r.webhook_id for r in got}) == 1
    wait_until(lambda: statuses(d, "web:retried")[("partner", "acme", "article.published")]["status"]
               == "delivered", 20, "delivered")
    assert statuses(d, "web:retried")[("partner", "acme", "article.published")]["attempts"] == 3


def test_rows_committed_but_never_enqueued_are_delivered_by_the_sweep(module_running, module_partner):
    # given an article stored with its deliveries, as if the process died before enqueueing
    from config import load_config

    d, partner = module_running, module_partner
    store = Store(d.database_url)
    with store.session() as s:
        rec = record_article(s, parse_article(story("unqueued"), "t"), load_config(d.config))
    store.dispose()
    assert rec.partner_deliveries

    # then the running worker's sweep finds the due rows and they are delivered
    got = partner.wait_for(lambda _: messages(partner, "web:unqueued"), timeout=60)
    assert messages(partner, "web:unqueued")[0].message["data"]["id"] == "web:unqueued"
    wait_until(lambda: (rows := _rows(d, "web:unqueued")) and all(r.status == "delivered" for r in rows),
               30, "all rows delivered")
    assert "sweep enqueued" in "".join(d.log(p) for p in d.processes)
    assert len(messages(partner, "web:unqueued")) == 1, got


def _rows(deployment, article_id):
    store = Store(deployment.database_url)
    try:
        with store.session() as s:
            return s.scalars(select(DeliveryRow).where(DeliveryRow.article_id == article_id)).all()
    finally:
        store.dispose()


def test_bad_input_files_are_named_and_good_ones_still_go_through(module_running, module_partner):
    d, partner = module_running, module_partner
    bad = write(d, story("bad", published_at="last tuesday"), "bad")
    broken = d.root / "broken.json"
    broken.write_text("{")
    good = write(d, story("good-beside-bad"), "good")
    result = d.syndicate("ingest", str(bad), str(broken), str(good))
    assert result.returncode == 1
    assert f"{bad}" in result.stderr and "published_at" in result.stderr
    assert f"{broken}" in result.stderr and "not valid JSON" in result.stderr
    partner.wait_for(lambda _: messages(partner, "web:good-beside-bad"))
    assert messages(partner, "web:bad") == []


def test_ingest_reads_stdin(module_running, module_partner):
    d, partner = module_running, module_partner
    result = d.syndicate("ingest", "-", input=json.dumps(story("from-stdin")))
    assert result.returncode == 0, result.stderr
    partner.wait_for(lambda _: messages(partner, "web:from-stdin"))


def test_the_breaker_pauses_a_failing_partner_at_its_real_threshold_under_a_real_worker(module_running,
                                                                                      module_partner):
    """Default threshold (10 failures in a row); the module's cool-off is 5 s."""
    from config.tunables import tunables

    d, partner = module_running, module_partner
    threshold = tunables().breaker_threshold
    assert threshold == 10
    stories = [story(f"breaker-{n}") for n in range(15)]
    ids = {s["id"] for s in stories}
    partner.default = (503, {}, b"down")
    try:
        d.syndicate("ingest", str(write(d, stories, "breaker")), check=True)
        wait_until(lambda: "stage=circuit-open" in "".join(d.log(p) for p in d.processes), 60, "the circuit to open")
        # The 15 first attempts go out together (one batch, parallel lanes); those still in
        # flight when the circuit opened land after it: count once a sweep has run.
        d.wait_for_sweeps(1)
        failed = len([r for r in partner.verified() if r.message["data"]["id"] in ids])
        # sends already on their way when it opened may land; no more than one lane's worth
        assert threshold <= failed < threshold + 8
        # while it is open, sweeps run and nothing more is sent
        d.wait_for_sweeps(2)
        assert len([r for r in partner.verified() if r.message["data"]["id"] in ids]) == failed
    finally:
        partner.default = (200, {}, b'{"ok":true}')
    # after the cool-off a probe goes, succeeds, the circuit closes and every story goes out
    wait_until(lambda: all(messages(partner, i) and messages(partner, i)[-1].status == 200 for i in ids), 90,
               "every story delivered after the circuit closed")
    assert "stage=circuit-closed" in "".join(d.log(p) for p in d.processes)
    statuses_now = [statuses(d, i)[("partner", "acme", "article.published")] for i in sorted(ids)]
    assert all(s["status"] == "delivered" for s in statuses_now)
    # the breaker held deliveries back without spending their attempts: none reached the last one
    assert max(s["attempts"] for s in statuses_now) <= 3
