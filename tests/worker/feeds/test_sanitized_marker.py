"""Stored bodies are sanitized once: a feed uses a body as stored only when its row says it is
the fixed point of today's sanitizer with today's iframe hosts; every other body (rows
stored by older code, other rules, other hosts, bodies sanitizing changes again) is
sanitized when the entry is prepared, as it always was."""

from sqlalchemy import update

from tests.worker.feeds.conftest import build_files, make_config, store_articles
from tests.worker.feeds.fixtures import HOSTILE_BODY
from worker.articles import parse_article
from worker.feeds.items import FeedItem, clean_body
from worker.sanitize import sanitize_html, sanitize_to_store, sanitizer_fingerprint
from worker.store import ArticleRow

URL = "https://london-news-net.example/world/story/"
HOSTS = ("www.youtube.com",)
# A block in a button in a paragraph: the button goes, leaving `<p><div>x</div></p>`, which
# html5ever parses as `<p></p><div>x</div><p></p>`: sanitizing is not idempotent on it.
NOT_A_FIXED_POINT = "<p><button><div>x</div></button></p>"


def article(body: str, **fields):
    data = {"id": "web:1", "url": URL, "title": "A story", "published_at": "2026-11-26T09:00:00Z",
            "content_html": body}
    data.update(fields)
    return parse_article(data, "test")


def stored_row(store, article_id="web:1") -> ArticleRow:
    with store.session() as s:
        row = s.get(ArticleRow, article_id)
        s.expunge(row)
        return row


def test_a_body_is_marked_only_when_it_is_its_own_fixed_point():
    clean, marker = sanitize_to_store(HOSTILE_BODY, URL, HOSTS)
    assert marker == sanitizer_fingerprint(HOSTS) and sanitize_html(clean, URL, HOSTS) == clean
    clean, marker = sanitize_to_store(NOT_A_FIXED_POINT, URL, HOSTS)
    assert sanitize_html(clean, URL, HOSTS) != clean and marker is None


def test_the_fingerprint_names_the_iframe_hosts_not_their_order():
    assert sanitizer_fingerprint(["a.example", "b.example"]) == sanitizer_fingerprint(["b.example", "a.example"])
    assert sanitizer_fingerprint(["a.example"]) != sanitizer_fingerprint(["a.example", "b.example"])
    assert len(sanitizer_fingerprint(HOSTS)) <= 40  # the column's size


def test_storing_marks_the_row_and_the_feed_uses_its_body_as_stored(store, config):
    store_articles(store, config, [article(HOSTILE_BODY)])
    row = stored_row(store)
    hosts = tuple(config.feed_settings.iframe_hosts)
    assert row.sanitized_as == sanitizer_fingerprint(hosts)
    # Proof that the stored body is used, not sanitized again: a marked body is taken as it is.
    item = FeedItem.from_row(row)
    assert clean_body(item, hosts) is item.content_html


def test_rows_without_the_current_marker_are_sanitized(store, config, tmp_path):
    store_articles(store, config, [article("<p>Safe</p>"), article("<p>Safe too</p>", id="web:2")])
    # A row as older code left it (no marker), and one marked under other rules, both
    # holding markup no sanitizer lets through.
    unsafe = '<p onclick="x()">Hi<script>alert(1)</script></p>'
    with store.session() as s:
        s.execute(update(ArticleRow).where(ArticleRow.id == "web:1").values(content_html=unsafe, sanitized_as=None))
        s.execute(update(ArticleRow).where(ArticleRow.id == "web:2").values(content_html=unsafe,
                                                                            sanitized_as="r0-older-rules"))
    files = build_files(store, config, tmp_path, "all")
    for name, data in files.items():
        assert b"alert" not in data and b"onclick" not in data, name
        body = b"<p>Hi</p>" if name.endswith(".json") else b"&lt;p&gt;Hi&lt;/p&gt;"
        assert data.count(body) == 2, name  # both bodies, sanitized


def test_a_change_of_iframe_hosts_applies_to_stored_bodies(store, config, tmp_path):
    body = '<p>Clip</p><iframe src="https://www.youtube.com/embed/abc"></iframe>'
    store_articles(store, config, [article(body)])
    assert b"youtube.com/embed/abc" in build_files(store, config, tmp_path / "before", "all")["all.atom"]
    without_youtube = make_config('\n[feed_settings]\niframe_hosts = ["player.vimeo.com"]\n')
    files = build_files(store, without_youtube, tmp_path / "after", "all")
    assert all(b"youtube" not in data for data in files.values())


def test_a_body_that_is_not_a_fixed_point_is_sanitized_again_as_before(store, config, tmp_path):
    hosts = tuple(config.feed_settings.iframe_hosts)
    store_articles(store, config, [article(NOT_A_FIXED_POINT)])
    row = stored_row(store)
    assert row.sanitized_as is None
    twice = sanitize_html(sanitize_html(NOT_A_FIXED_POINT, URL, hosts), URL, hosts)
    assert clean_body(FeedItem.from_row(row), hosts) == twice
