"""The partner stand-in refuses what a real Standard Webhooks receiver refuses, whatever
failure a test planned: a refused request gets its 4xx at once and leaves the plan alone."""

import json
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from standardwebhooks import Webhook

from tests.conftest import new_secret, wait_until
from tests.support.partner_server import RESET, PartnerServer, Slow

ENVELOPE = {"type": "article.published", "timestamp": "2026-11-30T07:00:00Z", "data": {"id": "web:1"}}


@pytest.fixture
def partner():
    server = PartnerServer(new_secret()).start()
    yield server
    server.stop()


def signed(secret: str, body: bytes, *, at: datetime | None = None, msg_id: str = "msg_1") -> dict:
    at = at or datetime.now(timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
            "content-type": "application/json"}


def post(partner, body: bytes, headers: dict, path: str = "/hooks", method: str = "POST"):
    base = partner.url.rsplit("/hooks", 1)[0]
    return requests.request(method, base + path, data=body, headers=headers, timeout=5)


BODY = json.dumps(ENVELOPE).encode()


def test_a_signed_fresh_json_message_is_accepted(partner):
    answer = post(partner, BODY, signed(partner.secret, BODY))
    assert answer.status_code == 200
    [got] = partner.received
    assert got.verified and got.message == ENVELOPE and got.status == 200
    partner.assert_only_valid()


def _stale(partner):
    return signed(partner.secret, BODY, at=datetime.now(timezone.utc) - timedelta(minutes=6))


def _future(partner):
    return signed(partner.secret, BODY, at=datetime.now(timezone.utc) + timedelta(minutes=6))


def _other_secret(partner):
    return signed(new_secret(), BODY)


def _tampered(partner):
    return signed(partner.secret, BODY.replace(b"web:1", b"web:2"))


def _no_signature(partner):
    headers = signed(partner.secret, BODY)
    del headers["webhook-signature"]
    return headers


def _text_plain(partner):
    return dict(signed(partner.secret, BODY), **{"content-type": "text/plain"})


REFUSED = [
    # (what is wrong, headers, body to send, path, method, status a real receiver answers)
    ("bad signature", _other_secret, BODY, "/hooks", "POST", 401),
    ("body changed after signing", _tampered, BODY, "/hooks", "POST", 401),
    ("no signature", _no_signature, BODY, "/hooks", "POST", 401),
    ("stale timestamp", _stale, BODY, "/hooks", "POST", 401),
    ("timestamp from the future", _future, BODY, "/hooks", "POST", 401),
    ("wrong content type", _text_plain, BODY, "/hooks", "POST", 415),
    ("wrong path", lambda p: signed(p.secret, BODY), BODY, "/webhooks", "POST", 404),
    ("wrong method", lambda p: signed(p.secret, BODY), BODY, "/hooks", "PUT", 405),
]


@pytest.mark.parametrize("planned", [None, (503, {}, b"down"), (200, {}, b"{}"), RESET, Slow(10.0)],
                         ids=["nothing", "503", "200", "reset", "slow"])
@pytest.mark.parametrize("what, headers, body, path, method, status", REFUSED, ids=[r[0] for r in REFUSED])
def test_what_a_real_receiver_refuses_is_refused_whatever_is_planned(partner, planned, what, headers, body,
                                                                     path, method, status):
    if planned is not None:
        partner.plan.append(planned)
    started = time.monotonic()
    answer = post(partner, body, headers(partner), path=path, method=method)
    assert answer.status_code == status, what
    assert time.monotonic() - started < 5  # refused at once: a planned slow answer is not applied
    [got] = partner.received
    assert not got.verified and got.status == status and got.error
    assert partner.verified() == [] and partner.refused() == [got]
    with pytest.raises(AssertionError, match="refused"):
        partner.assert_only_valid()
    # the planned reply is still there for the next valid request
    assert list(partner.plan) == ([planned] if planned is not None else [])


def test_a_signed_body_that_is_not_an_envelope_is_refused(partner):
    for body in (b"not json", json.dumps({"type": "x"}).encode(), b"[1, 2]"):
        answer = post(partner, body, signed(partner.secret, body))
        assert answer.status_code == 401
    assert len(partner.refused()) == 3 and partner.verified() == []


def test_a_request_cut_off_mid_body_is_counted_not_handed_on(partner):
    host, port = partner.httpd.server_address[:2]
    headers = signed(partner.secret, BODY)
    with socket.create_connection((host, port)) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"POST /hooks HTTP/1.1\r\nHost: x\r\n{head}content-length: {len(BODY)}\r\n\r\n".encode()
                     + BODY[:10])
    wait_until(lambda: partner.incomplete == 1, 10, "the cut-off request")
    assert partner.received == []
    partner.assert_only_valid(incomplete=1)
    with pytest.raises(AssertionError, match="cut off"):
        partner.assert_only_valid()
