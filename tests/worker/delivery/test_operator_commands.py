"""`syndicate deliveries`, `replay`, `partners` and `republish` against a running worker.

These run on PostgreSQL only (the production store): the SQL they drive is covered on
both backends by the executor tests, and a running worker per case is costly."""

import json

import pytest

from tests.conftest import wait_until, write_config
from tests.worker.delivery.conftest import article, start_worker


@pytest.fixture
def database_url(request):
    from tests.conftest import _pg_schema_url

    return _pg_schema_url(request.getfixturevalue("pg_server_url"))


def ingest(deployment, tmp_path, items, name="burst.json"):
    path = tmp_path / name
    path.write_text(json.dumps(items))
    deployment.syndicate("ingest", str(path), check=True)


def listed(deployment, *args):
    return json.loads(deployment.syndicate("deliveries", "--json", *args, check=True).stdout)


def all_in(deployment, status, count, *args):
    return lambda: (got := listed(deployment, *args)) and len(got) == count and all(
        d["status"] == status for d in got)


def test_dead_deliveries_are_listed_and_replayed_under_their_webhook_ids(deployment, partner, partner_secret,
                                                                       tmp_path):
    # given a partner that is down for longer than the whole (short) schedule (and a breaker
    # that does not step in, to keep the test short)
    start_worker(deployment, SYNDICATE_BREAKER_THRESHOLD=1000)
    running = deployment
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
    ingest(running, tmp_path, [article(1)], "one.json")
    wait_until(lambda: not json.loads(running.syndicate("partners", "list", "--json", check=True).stdout)[0]["enabled"],
               30, "the partner to be disabled")
    report = json.loads(running.syndicate("partners", "list", "--json", check=True).stdout)[0]
    assert report["disabled_by"] == "policy" and "410" in report["disabled_reason"]
    assert "DISABLED" in running.syndicate("partners", check=True).stdout

    # while disabled, a new story is stored but nothing more is sent
    ingest(running, tmp_path, [article(2)], "two.json")
    import time

    time.sleep(4)  # several sweeps
    assert len(partner.received) == 1
    assert {d["status"] for d in listed(running)} == {"pending"}

    # enable: what waited goes out
    out = running.syndicate("partners", "enable", "acme", check=True)
    assert "2 waiting deliveries" in out.stdout
    wait_until(all_in(running, "delivered", 2), 30, "the waiting deliveries to go out")
    assert sorted(r.message["data"]["id"] for r in partner.received[1:]) == ["web:story-1", "web:story-2"]
    listing = running.syndicate("partners", "list", check=True).stdout + json.dumps(report)
    assert partner_secret not in listing


def test_an_operator_can_disable_and_enable_a_partner(running, partner, tmp_path):
    assert "disabled" in running.syndicate("partners", "disable", "acme", "--reason", "maintenance",
                                           check=True).stdout
    ingest(running, tmp_path, [article(1)], "one.json")
    import time

    time.sleep(3)
    assert partner.received == []
    report = json.loads(running.syndicate("partners", "list", "--json", check=True).stdout)[0]
    assert (report["enabled"], report["disabled_by"], report["disabled_reason"]) == (False, "operator", "maintenance")
    running.syndicate("partners", "enable", "acme", check=True)
    partner.wait_for(lambda got: len(got) == 1, 30)
    unknown = running.syndicate("partners", "enable", "nobody")
    assert unknown.returncode == 1 and "no partner 'nobody'" in unknown.stderr


def test_republish_sends_a_new_message_and_replay_the_same_one(running, partner, tmp_path):
    ingest(running, tmp_path, [article(1)], "one.json")
    partner.wait_for(lambda got: len(got) == 1, 30)
    out = running.syndicate("republish", "web:story-1", check=True)
    assert "sent again as a new message to 1 partner" in out.stdout
    got = partner.wait_for(lambda got: len(got) == 2, 30)
    assert got[0].webhook_id != got[1].webhook_id
    assert got[0].message["data"] == got[1].message["data"]
    missing = running.syndicate("republish", "web:nope")
    assert missing.returncode == 1 and "no article 'web:nope'" in missing.stderr


def test_bad_operator_input_is_named(deployment):
    running = deployment
    running.syndicate("migrate", check=True)
    bad = running.syndicate("deliveries", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr
    bad = running.syndicate("replay", "--partner", "nobody")
    assert bad.returncode == 1 and "no destination 'nobody'" in bad.stderr
    bad = running.syndicate("deliveries", "--status", "lost")
    assert bad.returncode == 2 and "--status" in bad.stderr


def test_check_refuses_a_private_partner_address(deployment, partner_secret):
    write_config(deployment.config, partners=[{"name": "intranet", "url": "http://10.0.0.7/hooks",
                                                "secret": partner_secret}])
    result = deployment.syndicate("check")
    assert result.returncode == 2
    assert "[[partners]] 'intranet'" in result.stderr and "10.0.0.7 is a private address" in result.stderr
    assert partner_secret not in result.stdout + result.stderr
