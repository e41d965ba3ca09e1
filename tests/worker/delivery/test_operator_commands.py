"""`syndicate deliveries`, `replay`, `partners` and `republish` against a running worker.

These run on PostgreSQL only (the production store): the SQL they drive is covered on
both backends by the executor tests. One running deployment serves the module (a running
worker per case is costly); each case uses stories of its own, in the order an operator's
day would bring them."""

import json

import pytest

from tests.conftest import REDIS_BASE, _pg_schema_url, make_deployment, start_running, wait_until, write_config
from tests.worker.delivery.conftest import article

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running(tmp_path_factory, redis_db, pg_server_url, module_partner):
    """`syndicate run` with a breaker that does not step in (25 deliveries fail on purpose)."""
    import redis as redis_lib

    redis_url = f"{REDIS_BASE}/{redis_db}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    d = make_deployment(tmp_path_factory.mktemp("operator"), redis_url, _pg_schema_url(pg_server_url),
                        module_partner, SYNDICATE_REQUEUE_AFTER="3", SYNDICATE_BREAKER_THRESHOLD="1000")
    d.syndicate("migrate", check=True)
    start_running(d, "--loglevel", "DEBUG")
    yield d
    d.stop_all()


@pytest.fixture
def partner(module_partner):
    """The module's partner, back to answering 200; it must have seen only valid requests."""
    module_partner.default = (200, {}, b'{"ok":true}')
    module_partner.plan.clear()
    yield module_partner
    module_partner.assert_only_valid()


@pytest.fixture
def partner_secret(partner):
    return partner.secret


def ingest(deployment, tmp_path, items, name="burst.json"):
    path = tmp_path / name
    path.write_text(json.dumps(items))
    deployment.syndicate("ingest", str(path), check=True)


def listed(deployment, *args):
    return json.loads(deployment.syndicate("deliveries", "--json", *args, check=True).stdout)


def all_in(deployment, status, count, *args):
    return lambda: (got := listed(deployment, *args)) and len(got) == count and all(
        d["status"] == status for d in got)


def of(partner, *article_ids):
    return [r for r in partner.received if r.message and r.message["data"]["id"] in article_ids]


def test_dead_deliveries_are_listed_and_replayed_under_their_webhook_ids(running, partner, partner_secret,
                                                                       tmp_path):
    # given a partner that is down for longer than the whole (short) schedule (and a breaker
    # that does not step in, to keep the test short)
    partner.default = (503, {}, b"down for maintenance")
    items = [article(n) for n in range(25)]
    ingest(running, tmp_path, items)
    wait_until(all_in(running, "dead", 25), 90, "every delivery to be dead")
    dead = listed(running, "--status", "dead", "--partner", "acme", "--since", "1h")
    assert len(dead) == 25 and all(d["attempts"] == 4 and "HTTP 503" in d["last_error"] for d in dead)
    assert listed(running, "--status", "delivered") == []
    table = running.syndicate("deliveries", "--status", "dead", check=True).stdout
    assert "web:story-3" in table and "dead" in table
    ids_before = {d["id"]: d["message_id"] for d in dead}
    sent_before = len(partner.received)

    # a dry run says what it would do and sends nothing
    dry = running.syndicate("replay", "--status", "dead", "--dry-run", check=True)
    assert "would replay 25 dead deliveries: acme 25" in dry.stdout
    assert len(partner.received) == sent_before and len(listed(running, "--status", "dead")) == 25

    # when the partner is back and the operator replays
    partner.default = (200, {}, b"{}")
    out = running.syndicate("replay", "--partner", "acme", "--since", "2h", check=True)
    assert "replayed 25" in out.stdout
    assert "replaying" in out.stderr and "25/25" in out.stderr  # the progress bar
    wait_until(all_in(running, "delivered", 25), 60, "every replayed delivery to be delivered")

    # then each went out again under its original webhook-id
    replayed = partner.received[sent_before:]
    assert sorted(r.webhook_id for r in replayed) == sorted(ids_before.values())
    assert all(r.verified for r in replayed)
    assert all(len(ids) == 1 for ids in partner.ids_per_message().values())
    outputs = out.stdout + out.stderr + dry.stdout + json.dumps(dead) + table
    assert partner_secret not in outputs


def test_410_disables_the_partner_until_an_operator_enables_it(running, partner, partner_secret, tmp_path):
    partner.plan.append((410, {}, b"this endpoint is gone"))
    sent_before = len(partner.received)
    ingest(running, tmp_path, [article(101)], "one.json")
    wait_until(lambda: not json.loads(running.syndicate("partners", "list", "--json", check=True).stdout)[0]["enabled"],
               30, "the partner to be disabled")
    report = json.loads(running.syndicate("partners", "list", "--json", check=True).stdout)[0]
    assert report["disabled_by"] == "policy" and "410" in report["disabled_reason"]
    assert "DISABLED" in running.syndicate("partners", check=True).stdout

    # while disabled, a new story is stored but nothing more is sent
    ingest(running, tmp_path, [article(102)], "two.json")
    running.wait_for_sweeps(3)  # each sweep had its chance to send what waits
    assert len(partner.received) == sent_before + 1
    assert {d["status"] for d in listed(running, "--article", "web:story-101")
            + listed(running, "--article", "web:story-102")} == {"pending"}

    # enable: what waited goes out
    out = running.syndicate("partners", "enable", "acme", check=True)
    assert "2 waiting deliveries" in out.stdout
    wait_until(lambda: all_in(running, "delivered", 1, "--article", "web:story-101")()
               and all_in(running, "delivered", 1, "--article", "web:story-102")(), 30,
               "the waiting deliveries to go out")
    assert sorted(r.message["data"]["id"] for r in partner.received[sent_before + 1:]) == ["web:story-101",
                                                                                           "web:story-102"]
    listing = running.syndicate("partners", "list", check=True).stdout + json.dumps(report)
    assert partner_secret not in listing


def test_an_operator_can_disable_and_enable_a_partner(running, partner, tmp_path):
    assert "disabled" in running.syndicate("partners", "disable", "acme", "--reason", "maintenance",
                                           check=True).stdout
    sent_before = len(partner.received)
    ingest(running, tmp_path, [article(201)], "one.json")
    running.wait_for_sweeps(3)  # each sweep had its chance to send it
    assert of(partner, "web:story-201") == [] and len(partner.received) == sent_before
    report = json.loads(running.syndicate("partners", "list", "--json", check=True).stdout)[0]
    assert (report["enabled"], report["disabled_by"], report["disabled_reason"]) == (False, "operator", "maintenance")
    running.syndicate("partners", "enable", "acme", check=True)
    partner.wait_for(lambda _: len(of(partner, "web:story-201")) == 1, 30)
    unknown = running.syndicate("partners", "enable", "nobody")
    assert unknown.returncode == 1 and "no partner 'nobody'" in unknown.stderr


def test_republish_sends_a_new_message_and_replay_the_same_one(running, partner, tmp_path):
    ingest(running, tmp_path, [article(301)], "one.json")
    partner.wait_for(lambda _: len(of(partner, "web:story-301")) == 1, 30)
    wait_until(all_in(running, "delivered", 1, "--article", "web:story-301"), 30, "delivered")
    out = running.syndicate("republish", "web:story-301", check=True)
    assert "sent again as a new message to 1 partner" in out.stdout
    partner.wait_for(lambda _: len(of(partner, "web:story-301")) == 2, 30)
    first, again = of(partner, "web:story-301")
    assert first.webhook_id != again.webhook_id
    assert first.message["data"] == again.message["data"]

    # replay of a delivered delivery, by article, waiting for it: the same message, same id
    wait_until(all_in(running, "delivered", 2, "--article", "web:story-301"), 30, "both delivered")
    replayed = running.syndicate("replay", "--status", "delivered", "--article", "web:story-301", "--wait",
                                 check=True, timeout=90)
    assert "replaying 2 delivered deliveries: acme 2" in replayed.stdout, replayed.stdout
    # --wait returned once the replay had landed; the older message, which the republished one
    # overtook, is superseded and not sent again
    got = of(partner, "web:story-301")
    assert [r.webhook_id for r in got] == [first.webhook_id, again.webhook_id, again.webhook_id], \
        [(d["status"], d["last_error"]) for d in listed(running, "--article", "web:story-301")]
    assert all(r.status == 200 for r in got)

    missing = running.syndicate("republish", "web:nope")
    assert missing.returncode == 1 and "no article 'web:nope'" in missing.stderr


def test_republish_to_one_partner_with_the_older_partner_option(running, partner, tmp_path):
    ingest(running, tmp_path, [article(501)], "one.json")
    partner.wait_for(lambda _: len(of(partner, "web:story-501")) == 1, 30)
    # `--partner` is the older spelling of `--to`, kept for operators' scripts
    out = running.syndicate("republish", "web:story-501", "--partner", "acme", "--wait", check=True, timeout=90)
    assert "sent again as a new message to 1 partner" in out.stdout
    first, again = of(partner, "web:story-501")
    assert first.webhook_id != again.webhook_id and again.status == 200  # --wait: landed before it returned
    unknown = running.syndicate("republish", "web:story-501", "--partner", "nobody")
    assert unknown.returncode != 0 and "nobody" in unknown.stderr and "Traceback" not in unknown.stderr


def test_failed_deliveries_are_replayed_once_fixed(running, partner, tmp_path):
    # given a partner refusing one story for good (a 422 is final: status failed)
    partner.plan.append((422, {}, b'{"error":"unknown section"}'))
    ingest(running, tmp_path, [article(401)], "failing.json")
    wait_until(all_in(running, "failed", 1, "--article", "web:story-401"), 30, "the delivery to fail")
    [failed] = listed(running, "--article", "web:story-401")
    assert "HTTP 422" in failed["last_error"]
    # when the operator replays failed deliveries of that article, waiting for them
    out = running.syndicate("replay", "--status", "failed", "--article", "web:story-401", "--wait", check=True,
                            timeout=90)
    assert "replaying 1 failed delivery: acme 1" in out.stdout
    # then it went out again under the same id and landed
    first, second = of(partner, "web:story-401")
    assert first.status == 422 and second.status == 200 and first.webhook_id == second.webhook_id
    assert listed(running, "--article", "web:story-401")[0]["status"] == "delivered"


def test_bad_operator_input_is_named(running):
    bad = running.syndicate("deliveries", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr
    bad = running.syndicate("replay", "--partner", "nobody")
    assert bad.returncode == 1 and "no destination 'nobody'" in bad.stderr
    bad = running.syndicate("deliveries", "--status", "lost")
    assert bad.returncode == 2 and "--status" in bad.stderr


def test_check_refuses_a_private_partner_address(running, module_partner, partner_secret, tmp_path):
    deployment = make_deployment(tmp_path, running.env["REDIS_URL"], running.database_url, module_partner)
    write_config(deployment.config, partners=[{"name": "intranet", "url": "http://10.0.0.7/hooks",
                                                "secret": partner_secret}])
    result = deployment.syndicate("check")
    assert result.returncode == 2
    assert "[[partners]] 'intranet'" in result.stderr and "10.0.0.7 is a private address" in result.stderr
    assert partner_secret not in result.stdout + result.stderr
