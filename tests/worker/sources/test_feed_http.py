"""The feed source's HTTP side against the strict stand-in: Basic auth (sent, refused when
wrong, never logged), If-Modified-Since when the server sends no ETag, and a wrong path."""

from __future__ import annotations

import logging

import pytest

from tests.support.feed_server import FeedServer
from tests.worker.sources.helpers import poll, source_config

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Wire</title><link>https://wire.example/</link><description>Wire</description>
<item><title>Wire story {n}</title><link>https://wire.example/story/{n}</link><guid isPermaLink="false">wire-{n}</guid>
<pubDate>Fri, 20 Nov 2026 09:00:00 +0000</pubDate><description>Summary {n}</description></item>
</channel></rss>"""
PASSWORD = "wxyz WXYZ 1234 abcd"


@pytest.fixture
def upstream():
    server = FeedServer().start()
    server.serve(RSS.format(n=1))
    yield server
    server.stop()


def feed_config(url, **extra):
    return source_config(name="wire", type="feed", url=url, interval="1s", timeout="2s", **extra)


def test_the_stand_in_refuses_a_wrong_path_and_missing_or_wrong_credentials(upstream):
    import requests

    upstream.require_basic_auth("syndicate", PASSWORD)
    assert requests.get(upstream.url.replace("/rss", "/atom"), auth=("syndicate", PASSWORD), timeout=5).status_code == 404
    assert requests.get(upstream.url, timeout=5).status_code == 401
    answer = requests.get(upstream.url, auth=("syndicate", "guess"), timeout=5)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")
    upstream.status = 503  # a planned failure does not come before the checks
    assert requests.get(upstream.url, timeout=5).status_code == 401
    assert requests.get(upstream.url, auth=("syndicate", PASSWORD), timeout=5).status_code == 503
    assert [code for code, _ in upstream.refused] == [404, 401, 401, 401]


def test_basic_auth_is_sent_and_its_password_is_never_logged(upstream, store, redis_client, caplog):
    upstream.require_basic_auth("syndicate", PASSWORD)
    config = feed_config(upstream.url, username="syndicate", app_password=PASSWORD)
    with caplog.at_level(logging.DEBUG):
        result = poll(config, store, redis_client)
    assert result.status == "ok" and result.published == 1
    assert upstream.refused == []
    assert PASSWORD not in caplog.text


def test_wrong_credentials_are_a_clear_permanent_error_without_the_password(upstream, store, redis_client, caplog):
    upstream.require_basic_auth("syndicate", PASSWORD)
    config = feed_config(upstream.url, username="syndicate", app_password="not the password")
    with caplog.at_level(logging.DEBUG):
        result = poll(config, store, redis_client)
    assert result.status != "ok" and result.published == 0
    assert "401" in (result.error or "")
    assert "not the password" not in caplog.text + (result.error or "")
    assert [code for code, _ in upstream.refused] == [401]


def test_without_an_etag_the_next_poll_asks_if_modified_since(upstream, store, redis_client):
    upstream.send_etag = False
    config = feed_config(upstream.url)
    assert poll(config, store, redis_client).published == 1
    first = upstream.requests[-1]
    assert "if-modified-since" not in first and "if-none-match" not in first
    # unchanged: the conditional GET gets a 304 and nothing is stored again
    again = poll(config, store, redis_client)
    assert upstream.requests[-1]["if-modified-since"] == upstream.last_modified
    assert "if-none-match" not in upstream.requests[-1]
    assert again.status == "ok" and again.published == again.updated == 0
    # changed: a new Last-Modified, a full answer, the new story stored
    upstream.last_modified = "Sat, 21 Nov 2026 10:00:00 GMT"
    upstream.body = RSS.format(n=2).encode()
    assert poll(config, store, redis_client).published == 1
