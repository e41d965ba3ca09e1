"""What goes over the wire: Standard Webhooks signatures a partner verifies with the
library, the body (article JSON or ninjs 2.0), the 1 MB cut, and what comes back."""

import json
import socket
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

from config import ConfigError
from tests.conftest import new_secret
from tests.support.partner_server import RESET, Slow, redirect
from tests.worker.delivery.conftest import EXAMPLE, make_config, partner_entry
from worker.articles import parse_article
from worker.transports.ninjs import to_ninjs
from worker.transports.webhook import MAX_BODY_BYTES, TRUNCATION_MARKER, WebhookTransport, message_body

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
DATA = parse_article(EXAMPLE, "t").data()


@pytest.fixture
def transport():
    t = WebhookTransport()
    yield t
    t.close()


def test_a_message_verifies_with_the_standardwebhooks_library(servers, transport):
    server = servers()
    partner = make_config(partner_entry("acme", server, headers={"x-publisher": "lnn"})).partner("acme")
    outcome = transport.send_message(partner, "msg_1", "article.published", DATA)
    assert outcome.status_code == 200 and outcome.ok
    [got] = server.received
    assert got.verified, got.error
    assert got.headers["webhook-id"] == "msg_1"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-publisher"] == "lnn"
    assert got.message["type"] == "article.published"
    assert got.message["timestamp"].endswith("Z")
    assert set(got.message["data"]) >= {"id", "url", "title", "summary", "content_html", "authors", "section",
                                        "tags", "image", "language", "published_at", "updated_at", "version"}


def test_during_rotation_both_signatures_are_sent_and_either_secret_verifies(servers, transport):
    old, new = new_secret(), new_secret()
    server = servers(old)  # the partner has not switched to the new secret yet
    partner = make_config(partner_entry("acme", server, secret=new, previous_secret=old)).partner("acme")
    transport.send_message(partner, "msg_2", "article.updated", DATA)
    [got] = server.received
    assert got.verified, got.error
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(got.body, got.headers)


def test_redirects_are_not_followed_and_their_location_is_kept(servers, transport):
    server = servers()
    server.plan.append(redirect(301, "https://moved.example/hooks"))
    partner = make_config(partner_entry("acme", server)).partner("acme")
    outcome = transport.send_message(partner, "msg_3", "article.published", DATA)
    assert outcome.status_code == 301 and outcome.location == "https://moved.example/hooks"
    assert len(server.received) == 1


def test_timeouts_resets_and_refused_connections_are_classified(servers, transport):
    server = servers()
    server.plan.extend([Slow(3.0), RESET])
    partner = make_config(partner_entry("acme", server, timeout="1s")).partner("acme")
    assert transport.send_message(partner, "msg_4", "article.published", DATA).error_class == "timeout"
    assert transport.send_message(partner, "msg_5", "article.published", DATA).error_class == "connection_error"
    # a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = make_config(dict(partner_entry("gone", server), url=f"http://127.0.0.1:{port}/h")).partner("gone")
    assert transport.send_message(closed, "msg_6", "article.published", DATA).error_class == "connection_error"


def test_an_unresolvable_name_is_a_dns_error(transport):
    partner = make_config({"name": "nx", "url": "http://no-such-host.invalid/h", "secret": new_secret()}).partner("nx")
    assert transport.send_message(partner, "msg_7", "article.published", DATA).error_class == "dns_error"


def test_the_response_body_is_kept_up_to_2kb(servers, transport):
    server = servers()
    server.plan.append((500, {}, b"x" * 100_000))
    partner = make_config(partner_entry("acme", server)).partner("acme")
    outcome = transport.send_message(partner, "msg_8", "article.published", DATA)
    assert outcome.status_code == 500 and len(outcome.body) == 2048
    # and the pool still works afterwards
    assert transport.send_message(partner, "msg_9", "article.published", DATA).ok


def test_a_body_over_1mb_is_cut_with_a_marker_not_dropped():
    data = dict(DATA, content_html="é" * 700_000)
    body = message_body("article.published", data, NOW)
    assert len(body.encode()) <= MAX_BODY_BYTES
    parsed = json.loads(body)
    assert parsed["data"]["content_html"].endswith(TRUNCATION_MARKER) and parsed["data"]["truncated"] is True
    assert parsed["data"]["title"] == DATA["title"]
    ninjs = json.loads(message_body("article.published", data, NOW, payload="ninjs"))
    assert len(json.dumps(ninjs, ensure_ascii=False).encode()) <= MAX_BODY_BYTES
    assert ninjs["data"]["bodies"][0]["value"].endswith(TRUNCATION_MARKER)


def test_ninjs_payload_carries_the_story_as_ninjs_2(servers, transport):
    server = servers()
    partner = make_config(partner_entry("acme", server, payload="ninjs")).partner("acme")
    transport.send_message(partner, "msg_10", "article.published", DATA)
    [got] = server.received
    assert got.verified, got.error
    item = got.message["data"]
    assert item["standard"] == {"name": "ninjs", "version": "2.0",
                                "schema": "http://www.iptc.org/std/ninjs/ninjs-schema_2.0.json"}
    assert item["uri"] == "urn:syndicate:article:" + DATA["id"]
    assert item["type"] == "text" and item["pubstatus"] == "usable" and item["version"] == DATA["version"]
    assert item["headlines"] == [{"role": "main", "contenttype": "text/plain", "value": DATA["title"]}]
    assert item["bodies"][0] == {"role": "main", "contenttype": "text/html", "value": DATA["content_html"]}
    assert item["firstcreated"] == DATA["published_at"] and item["versioncreated"] == DATA["updated_at"]
    assert {"name": DATA["section"], "rel": "section"} in item["subjects"]
    assert item["associations"][0]["renditions"][0]["href"] == DATA["image"]["url"]
    assert {"role": "url", "value": DATA["url"]} in item["altids"]


def test_ninjs_withdrawal_is_canceled():
    item = to_ninjs("article.unpublished", {"id": "web:1", "url": "https://x.example/1", "version": "v1",
                                            "updated_at": "2026-11-26T12:00:00Z"})
    assert item["pubstatus"] == "canceled" and item["version"] == "v1" and "headlines" not in item


# --- private addresses ------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1/h", "http://10.1.2.3/h", "http://192.168.0.10:8080/h", "http://172.16.5.4/h",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/h", "http://[fe80::1]/h", "http://localhost:9000/h",
    "http://0.0.0.0/h", "http://[::ffff:10.0.0.1]/h", "http://100.64.0.1/h",
])
def test_a_literal_private_address_is_refused_by_the_config_check(url):
    with pytest.raises(ConfigError) as err:
        make_config({"name": "intranet", "url": url, "secret": new_secret()})
    assert "[[partners]] 'intranet'" in str(err.value) and "allow_private" in str(err.value)
    # ... unless the entry says it is an intranet partner
    assert make_config({"name": "intranet", "url": url, "secret": new_secret(), "allow_private": True})


def test_a_public_address_passes_the_config_check():
    assert make_config({"name": "p", "url": "https://93.184.216.34/h", "secret": new_secret()})
    assert make_config({"name": "p", "url": "https://partner.example.org/h", "secret": new_secret()})


# The send-time address check (a name resolving to a private address): test_address_and_tls.py,
# with a stand-in resolver so it holds on any machine.


@pytest.mark.parametrize("url", ["ftp://partner.example/h", "file:///etc/passwd", "gopher://x.example/"])
def test_only_http_and_https_urls(url):
    with pytest.raises(ConfigError):
        make_config({"name": "p", "url": url, "secret": new_secret()})
