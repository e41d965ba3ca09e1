"""WebSub publish pings, against a stand-in hub that checks what a real hub checks."""

import pytest
import requests

from config import parse_config
from worker.websub import HubError, display_url, publish, topics

TOPIC = "https://london-news-net.example/feeds/all.rss"


def test_a_ping_is_a_form_encoded_publish_of_the_feed_url(hub):
    assert publish(hub.url, TOPIC) == 204
    [ping] = hub.received
    assert ping.accepted and ping.topic == TOPIC
    assert ping.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"hub.mode=publish" in ping.body
    assert b"hub.url=https%3A%2F%2Flondon-news-net.example%2Ffeeds%2Fall.rss" in ping.body
    assert b"hub.topic=https%3A%2F%2Flondon-news-net.example%2Ffeeds%2Fall.rss" in ping.body


@pytest.mark.parametrize("send, problem", [
    (lambda url: requests.post(url, json={"hub.mode": "publish", "hub.url": TOPIC}), "content-type"),
    (lambda url: requests.post(url, data={"hub.mode": "subscribe", "hub.url": TOPIC}), "hub.mode"),
    (lambda url: requests.post(url, data={"hub.mode": "publish"}), "no hub.url"),
    (lambda url: requests.post(url, data={"hub.mode": "publish", "hub.url": "/feeds/all.rss"}), "absolute http"),
    (lambda url: requests.post(url, data={"hub.mode": "publish", "hub.url": TOPIC, "hub.topic": TOPIC + "x"}),
     "differ"),
])
def test_the_stand_in_hub_refuses_what_a_real_hub_refuses(hub, send, problem):
    response = send(hub.url)
    assert response.status_code == 400 and problem in response.text
    assert hub.received[0].accepted is False


def test_a_busy_or_unreachable_hub_is_worth_retrying_and_a_refusal_is_not(hub):
    hub.plan.extend([(503, b"busy"), (429, b"slow down"), (400, b"unknown topic"), (302, b"")])
    for permanent in (False, False, True, True):
        with pytest.raises(HubError) as info:
            publish(hub.url, TOPIC)
        assert info.value.permanent is permanent
    with pytest.raises(HubError) as info:
        publish("http://127.0.0.1:1/hub?token=secret", TOPIC, timeout=2)
    assert not info.value.permanent and "secret" not in str(info.value)


def test_topics_are_the_public_urls_of_changed_feed_files_only():
    config = parse_config('[site]\ntitle="t"\nurl="https://a.example"\nfeeds_url="https://a.example/feeds/"\n',
                          "t.toml", {})
    assert topics(config, ["all.rss", "all.atom", "all.json", "news-sitemap.xml"]) == [
        "https://a.example/feeds/all.rss", "https://a.example/feeds/all.atom", "https://a.example/feeds/all.json"]


def test_hub_urls_lose_credentials_and_query_in_logs():
    assert display_url("https://user:token@hub.example:8443/publish?secret=1") == "https://hub.example:8443/publish"
