"""The hostile corpus through the WordPress source (the stand-in WordPress, real HTTP):
posts whose fields are broken or adversarial in every way the REST API can carry. Each
is cleaned or rejected; the poll is not a failure; every other post is stored; feeds stay
valid; a WordPress title whose text is `<b>` keeps it."""

from __future__ import annotations

import copy

import pytest

from tests.hostile.conftest import assert_feeds_valid, assert_nothing_unsafe_stored_or_sent, rejection_rows, stored
from tests.support.wordpress_server import WordPressServer
from tests.worker.sources.helpers import poll

DEEP = b"[" * 10_000 + b"]" * 10_000
DIGITS = b"9" * 5000


class RawWordPress(WordPressServer):
    """The stand-in, with markers in served JSON replaced by what json.dumps cannot write:
    nesting 10,000 deep and 5,000-digit numbers (both valid JSON)."""

    def _answer(self, request):
        status, headers, body = super()._answer(request)
        return status, headers, body.replace(b'"__DEEP__"', DEEP).replace(b'"__DIGITS__"', DIGITS)


@pytest.fixture
def wp():
    server = RawWordPress().start()
    yield server
    server.stop()


def embedded(server, post_id: int, change) -> dict:
    value = copy.deepcopy(server.posts[post_id]["_embedded"])
    change(value)
    return value


def media(**fields):
    def change(e):
        e["wp:featuredmedia"][0].update(fields)
    return change


def media_details(**fields):
    def change(e):
        e["wp:featuredmedia"][0]["media_details"].update(fields)
    return change


# (post field, value) per fixture post; each also bumps its modified time.
CLEANED = {
    101: [("title", {"rendered": "Breaking\u000bnews &#8211; \ud800now"})],
    102: [("title", {"rendered": "Why &lt;b&gt; tags matter"})],
    103: [("content", {"rendered": '<p>Hi</p><img src="x.jpg" onerror="fetch(\'//evil\')">', "protected": False})],
    104: [("_embedded", lambda s: embedded(s, 104, media(alt_text={"not": "text"})))],
    105: [("_embedded", lambda s: embedded(s, 105, media_details(width=float("inf"), height="__DIGITS__")))],
    106: [("link", "https://editor:hunter2@london-news-net.example/story-106/")],
    107: [("_embedded", lambda s: embedded(s, 107, lambda e: e["wp:term"][0][0].update(
        name="<script>x()</script>World\u0007")))],
    108: [("excerpt", {"rendered": "<p>" + "lorem ipsum " * 300_000 + "</p>"})],
}
REFUSED = {
    109: ([("date_gmt", "9999-12-31T23:59:59")], "published_at: 9999-12-31T23:59:59Z is in the future"),
    110: ([("link", "https://london news.example/story/")], "url: host 'london news.example'"),
    111: ([("meta", "__DEEP__")], "the post cannot be read: not readable JSON: nested too deeply"),
    112: ([("title", {"rendered": "<script>alert(1)</script>"})], "title.rendered is empty"),
}


def test_every_hostile_post_is_cleaned_or_rejected_and_the_source_keeps_going(wp, store, redis_client, tmp_path):
    from tests.conftest import write_config

    for post_id, changes in list(CLEANED.items()) + [(k, v[0]) for k, v in REFUSED.items()]:
        for key, value in changes:
            wp.set_raw(post_id, key, value(wp) if callable(value) else value)
    # posts with broken ids and types come along in the same page
    new = wp.publish("A sibling published after them all")
    wp.set_raw(new, "categories", {"not": "a list"})
    broken = wp.publish("A post whose id is not a number")
    wp.set_raw(broken, "id", [1, 2])
    config_path = write_config(tmp_path / "syndication.toml", feeds=[{"name": "all", "title": "All"}],
                               extra=f'[[sources]]\nname = "wp"\ntype = "wordpress"\nurl = "{wp.url}"\n'
                                     'interval = "1s"\ntimeout = "5s"\n')
    from config import load_config

    config = load_config(config_path, env={})

    result = poll(config, store, redis_client)

    assert result.status == "ok", result.error
    rows = stored(store)
    assert set(rows) == {f"wp:{i}" for i in CLEANED} | {f"wp:{new}"}
    rejected = {r.upstream_id: r.reason for r in rejection_rows(store, "wp")}
    assert set(rejected) == {str(i) for i in REFUSED} | {"[1, 2]"}
    assert "post id [1, 2] is not a number" in rejected["[1, 2]"]
    for post_id, (_, fragment) in REFUSED.items():
        assert fragment in rejected[str(post_id)], (post_id, rejected[str(post_id)])
    assert rows["wp:101"].title == "Breaking news – now"
    assert rows["wp:102"].title == "Why <b> tags matter"
    assert "onerror" not in rows["wp:103"].content_html and "<p>Hi</p>" in rows["wp:103"].content_html
    assert rows["wp:104"].image["alt"] == ""
    assert rows["wp:105"].image["width"] is None and rows["wp:105"].image["height"] is None
    assert rows["wp:106"].url == "https://london-news-net.example/story-106/"
    assert rows["wp:107"].section == "World"
    assert len(rows["wp:108"].summary) <= 10_000
    assert_nothing_unsafe_stored_or_sent(store)

    # the feeds are valid and carry the title's text "<b>" (escaped), not lose it
    documents = assert_feeds_valid(store, config_path, tmp_path / "feeds")
    titles = [entry.title for entry in documents["rss"].entries]
    assert "Why <b> tags matter" in titles
    assert all("hunter2" not in (tmp_path / "feeds" / f).read_text() for f in ("all.rss", "all.atom", "all.json"))

    # the next poll re-reads the overlap and records nothing twice, and fails nothing
    again = poll(config, store, redis_client)
    assert again.status == "ok" and len(rejection_rows(store, "wp")) == len(REFUSED) + 1
