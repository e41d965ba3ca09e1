"""At send time: a partner whose name resolves to a private address is refused (the name
passed the config check; the address is what is dialled), and a TLS failure is a clear,
retried connection error that sends nothing."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

import pytest

from tests.conftest import new_secret
from tests.worker.delivery.conftest import make_config
from worker.transports.webhook import WebhookTransport

DATA = {"id": "web:1", "url": "https://lnn.example/1", "title": "A story", "version": "v1"}
NAME = "partner-intranet.example"


@pytest.fixture
def transport():
    t = WebhookTransport()
    yield t
    t.close()


@pytest.fixture
def dns(monkeypatch):
    """A stand-in for DNS: `partner-intranet.example` resolves to the loopback address (as a
    partner's name pointed at an internal host would); every other name as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        return real("127.0.0.1" if host == NAME else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_resolving_to_a_private_address_is_refused_at_send_time(servers, transport, dns):
    server = servers()
    port = server.httpd.server_address[1]
    url = f"http://{NAME}:{port}/hooks"
    partner = make_config({"name": "p", "url": url, "secret": server.secret}).partner("p")  # passes the config check
    outcome = transport.send_message(partner, "msg_1", "article.published", DATA)
    assert outcome.error_class == "blocked_address" and "allow_private" in outcome.error
    assert "127.0.0.1" in outcome.error
    assert server.received == [] and server.incomplete == 0
    # the same partner marked as an intranet one gets through
    allowed = make_config({"name": "p", "url": url, "secret": server.secret, "allow_private": True}).partner("p")
    assert transport.send_message(allowed, "msg_2", "article.published", DATA).ok
    server.assert_only_valid()


def test_https_to_a_server_that_does_not_speak_tls_is_a_retried_connection_error(servers, transport):
    server = servers()
    port = server.httpd.server_address[1]
    partner = make_config({"name": "p", "url": f"https://127.0.0.1:{port}/hooks", "secret": server.secret,
                           "allow_private": True, "timeout": "3s"}).partner("p")
    outcome = transport.send_message(partner, "msg_3", "article.published", DATA)
    assert not outcome.ok and outcome.error_class == "tls_error", outcome
    assert "SSL" in outcome.error
    assert server.received == []


def test_a_tls_failure_leaves_the_delivery_pending_for_a_retry(store, servers, deliverer_for):
    from tests.worker.delivery.conftest import article, attempts, row, store_article
    from worker.store import utcnow

    server = servers()
    port = server.httpd.server_address[1]
    config = make_config({"name": "acme", "url": f"https://127.0.0.1:{port}/hooks", "secret": server.secret,
                          "allow_private": True, "timeout": "3s", "retry_schedule": ["1m"]})
    [delivery_id] = store_article(store, config, article(1))
    deliverer_for(config).run([delivery_id])
    r = row(store, delivery_id)
    assert (r.status, r.attempts) == ("pending", 1) and r.next_attempt_at > utcnow()
    assert "SSL" in r.last_error
    assert [a.error_class for a in attempts(store, delivery_id)] == ["tls_error"]
    assert server.received == []


@pytest.fixture
def self_signed_server(tmp_path):
    """A TLS server with a certificate no CA signed: it must never get the message."""
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                        "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True, timeout=60)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a certificate here: {exc}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    got.append(tls.recv(65536))
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], got
    listener.close()


def test_a_certificate_that_does_not_verify_is_refused_and_nothing_is_sent(transport, self_signed_server):
    port, got = self_signed_server
    partner = make_config({"name": "p", "url": f"https://127.0.0.1:{port}/hooks", "secret": new_secret(),
                           "allow_private": True, "timeout": "3s"}).partner("p")
    outcome = transport.send_message(partner, "msg_4", "article.published", DATA)
    assert not outcome.ok and outcome.error_class == "tls_error", outcome
    assert "certificate" in outcome.error.lower() or "ssl" in outcome.error.lower(), outcome.error
    assert got == []  # not a byte of the message went over the unverified connection
