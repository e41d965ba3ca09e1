"""The WordPress source against the stand-in WordPress (real HTTP, real Redis, SQLite and
PostgreSQL stores): what a post becomes, paging that misses nothing and repeats nothing,
vanished and scheduled posts, bad posts."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import select

from tests.support.wordpress_server import FIXTURE, MISSING, WordPressServer, now_utc, wordpress  # noqa: F401
from tests.worker.sources.helpers import events, poll, rejections, source_config
from worker.sources.wordpress import WordPressSource
from worker.status import article_status
from worker.store import ArticleRow, SourceStateRow

FIXTURE_POSTS = json.loads(FIXTURE.read_text())


def wp_config(server, **extra):
    return source_config(name="wp", type="wordpress", url=server.url, interval="1s", timeout="5s", **extra)


def articles(store) -> dict[str, ArticleRow]:
    with store.session() as s:
        return {a.id: a for a in s.scalars(select(ArticleRow))}


def small_pages(config, size=10):
    return WordPressSource(config.sources[0], page_size=size)


def window_fetches(server) -> list:
    """Posts the window pass had to fetch because the changes pass had not seen them."""
    return [r for r in server.requests if r.param("include") and r.param("_embed") is not None]


# --- what a post becomes ----------------------------------------------------------------

def test_fixture_posts_become_articles_with_text_titles_and_embedded_details(wordpress, store, redis_client):
    config = wp_config(wordpress)

    result = poll(config, store, redis_client)

    assert result.status == "ok" and result.published == 12
    stored = articles(store)
    assert set(stored) == {f"wp:{p['id']}" for p in FIXTURE_POSTS}
    first = stored["wp:101"]
    assert first.title == "Putin Strengthens Relations with Syrian President Amidst Strategic Military Concerns"
    assert first.authors == ["World Desk"] and first.section == "World"
    assert first.tags == ["Russia", "Syria", "Kremlin"]
    assert first.image == {"url": "https://london-news-net.example/wp-content/uploads/2026/11/"
                                  "putin-strengthens-relations-wi-1200x800.jpg",
                           "alt": "Photo for Putin Strengthens Relations with Syrian President Amidst Str",
                           "width": 1200, "height": 800}
    # numeric entities decoded once, at this boundary; the body stays HTML
    assert stored["wp:102"].title.endswith("Southern Russia\u2019s Grain Heartland")
    assert "&#8217;" not in stored["wp:102"].title and "<p>" not in first.summary
    assert first.summary.startswith("President Vladimir Putin held discussions with Syria\u2019s")
    assert first.summary.endswith("[\u2026]")
    assert first.content_html.startswith("<p>President Vladimir Putin")
    # *_gmt is UTC; the stand-in's `date` is in Athens time, two hours ahead
    served = wordpress.post(101)
    assert first.published_at == datetime.fromisoformat(served["date_gmt"]).replace(tzinfo=timezone.utc)
    assert served["date"] != served["date_gmt"]
    assert stored["wp:107"].image is None  # no featured media
    assert first.url == FIXTURE_POSTS[0]["link"]


def test_every_date_sent_to_wordpress_carries_an_explicit_utc_offset(wordpress, store, redis_client):
    poll(wp_config(wordpress), store, redis_client)
    poll(wp_config(wordpress), store, redis_client)
    dated = [r.param(k) for r in wordpress.requests for k in ("modified_after", "modified_before", "after")
             if r.param(k)]
    assert dated and all(value.endswith("+00:00") for value in dated)


def test_the_stand_in_reads_a_date_without_offset_in_the_site_timezone(wordpress):
    # given a post modified at 10:00:00 UTC (12:00 in Athens)
    post_id = wordpress.publish("Timezone probe", when=datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc))
    url = wordpress.url + "/posts"

    def ids(value):
        return {p["id"] for p in requests.get(url, params={"modified_after": value, "per_page": 100}).json()}

    # then a bare 11:00 is 11:00 Athens time, before the post; 11:00 UTC is after it
    assert post_id in ids("2026-11-20T11:00:00")
    assert post_id not in ids("2026-11-20T11:00:00+00:00")
    # and "after" is strict: the post's own second does not match
    assert post_id not in ids("2026-11-20T10:00:00Z")
    assert post_id in ids("2026-11-20T09:59:59Z")


def test_the_stand_in_answers_like_wordpress_at_its_edges(wordpress):
    url = wordpress.url + "/posts"
    past_end = requests.get(url, params={"per_page": 10, "page": 3})
    assert past_end.status_code == 400 and past_end.json()["code"] == "rest_post_invalid_page_number"
    page = requests.get(url, params={"per_page": 5, "page": 1})
    assert page.headers["X-WP-Total"] == "12" and page.headers["X-WP-TotalPages"] == "3"
    assert "_embedded" not in page.json()[0]
    forbidden = requests.get(url, params={"status": "any"})
    assert forbidden.status_code == 400 and forbidden.json()["data"]["details"]["status"]["code"] == \
        "rest_forbidden_status"
    wrong = requests.get(url, auth=("syndication-bot", "wrong password"))
    assert wrong.status_code == 401 and wrong.json()["code"] == "incorrect_password"
    right = requests.get(url, params={"status": "any"}, auth=("syndication-bot", wordpress.app_password))
    assert right.status_code == 200
    assert requests.get(url, params={"per_page": 101}).status_code == 400
    assert requests.get(url, params={"modified_after": "yesterday"}).status_code == 400


# --- paging: nothing missed, nothing repeated -----------------------------------------------

def test_25_posts_sharing_one_modified_second_across_a_page_boundary_are_each_published_once(
        wordpress, store, redis_client):
    # given 25 posts saved in the same second, after 7 earlier ones, read 10 to a page
    config = wp_config(wordpress)
    second = now_utc() - timedelta(minutes=5)
    same = [wordpress.publish(f"Bulk story {i}", when=second) for i in range(25)]

    result = poll(config, store, redis_client, source=small_pages(config))

    assert result.status == "ok"
    published = Counter(e for e in events(store) if e[1] == "article.published")
    assert all(published[(f"wp:{i}", "article.published")] == 1 for i in same)
    assert len(published) == 12 + 25 and set(published.values()) == {1}
    assert window_fetches(wordpress) == []  # the changes pass itself saw every one
    # and the cursor stands on that second or later, and polling again changes nothing
    with store.session() as s:
        assert s.get(SourceStateRow, "wp").cursor["modified_gmt"] >= second.strftime("%Y-%m-%dT%H:%M:%S")
    again = poll(config, store, redis_client, source=small_pages(config))
    assert again.published == again.updated == again.unpublished == 0
    assert len(events(store)) == 37


def test_a_poll_cut_off_inside_a_tie_group_finishes_it_on_the_next_poll(wordpress, store, redis_client):
    # given 25 posts saved in one second and a WordPress that fails on the third request
    config = wp_config(wordpress)
    second = now_utc() - timedelta(minutes=5)
    same = [wordpress.publish(f"Bulk story {i}", when=second) for i in range(25)]
    served = []

    def fail_third(request):
        served.append(request)
        if len(served) == 2:
            wordpress.fail_with("500", times=1)

    wordpress.on_request.append(fail_third)
    first = poll(config, store, redis_client, source=small_pages(config))
    assert first.status == "failed"
    wordpress.on_request.clear()

    second_poll = poll(config, store, redis_client, source=small_pages(config))

    assert second_poll.status == "ok"
    published = Counter(events(store))
    assert all(published[(f"wp:{i}", "article.published")] == 1 for i in same)
    assert set(published.values()) == {1} and len(published) == 37
    assert window_fetches(wordpress) == []


def test_posts_published_edited_and_unpublished_while_the_poller_pages_are_each_seen_once(
        wordpress, store, redis_client):
    # given 5 posts to a page, and, as soon as the first page is served, a new post,
    # an edit of a post already read and an unpublish (which shifts every later post)
    config = wp_config(wordpress)
    changes = {}

    def change_once(request):
        if request.param("orderby") == "modified" and not changes:
            changes["new"] = wordpress.publish("Published mid-poll")
            wordpress.edit(101, title="Putin and Sharaa meet (corrected)")
            wordpress.unpublish(103)

    wordpress.on_request.append(change_once)
    poll(config, store, redis_client, source=small_pages(config, 5))
    wordpress.on_request.clear()
    poll(config, store, redis_client, source=small_pages(config, 5))

    history = events(store)
    counted = Counter(history)
    assert counted[(f"wp:{changes['new']}", "article.published")] == 1
    assert window_fetches(wordpress) == []  # no post was skipped by the shift
    assert counted[("wp:101", "article.updated")] == 1
    assert set(counted.values()) == {1}
    # nothing missed: every public post is stored as published
    stored = articles(store)
    public = {f"wp:{i}" for i in wordpress.public_ids()}
    assert public <= {i for i, a in stored.items() if a.status == "published"}
    assert stored["wp:101"].title == "Putin and Sharaa meet (corrected)"
    # the one unpublished during the first poll is withdrawn at the latest by the next: if the
    # first poll read it before it went, it was published and then withdrawn once; if not, it
    # was never stored at all. Either way it is not public.
    if ("wp:103", "article.published") in counted:
        assert stored["wp:103"].status == "unpublished"
        assert counted[("wp:103", "article.unpublished")] == 1
    else:
        assert "wp:103" not in stored and not [e for e in history if e[0] == "wp:103"]
    assert "wp:103" not in public


def test_ties_larger_than_a_page_are_read_whole_even_when_the_database_shuffles_them(
        wordpress, store, redis_client):
    # given 60 posts in one second (the stand-in shuffles equal timestamps per request)
    config = wp_config(wordpress)
    second = now_utc() - timedelta(minutes=3)
    same = {wordpress.publish(f"Wire copy {i}", when=second) for i in range(60)}

    poll(config, store, redis_client, source=small_pages(config, 10))

    stored = articles(store)
    assert {f"wp:{i}" for i in same} <= set(stored)
    assert Counter(events(store)).most_common(1)[0][1] == 1
    assert window_fetches(wordpress) == []


# --- change detection ------------------------------------------------------------------

def test_edits_make_one_update_and_whitespace_or_bookkeeping_changes_make_none(wordpress, store, redis_client):
    config = wp_config(wordpress)
    poll(config, store, redis_client)
    wordpress.edit(102, title="A corrected headline")
    content = wordpress.post(104)["content"]["rendered"]
    wordpress.edit(104, content=content.replace("</p>\n<p>", "</p>\n\n   <p>"))  # re-indented only
    wordpress.edit(105)  # saved without changes: a new modified time only

    result = poll(config, store, redis_client)

    assert (result.updated, result.published, result.unpublished) == (1, 0, 0)
    assert events(store, "wp:102") == [("wp:102", "article.published"), ("wp:102", "article.updated")]
    assert events(store, "wp:104") == [("wp:104", "article.published")]
    assert events(store, "wp:105") == [("wp:105", "article.published")]


def test_posts_that_vanish_without_credentials_are_unpublished_once(wordpress, store, redis_client):
    # given the fixture stored, then one post drafted, one trashed and one deleted
    config = wp_config(wordpress)
    poll(config, store, redis_client)
    wordpress.unpublish(106)
    wordpress.trash(107)
    wordpress.delete(108)

    result = poll(config, store, redis_client)
    again = poll(config, store, redis_client)

    assert result.unpublished == 3 and again.unpublished == 0
    for post_id in (106, 107, 108):
        assert events(store, f"wp:{post_id}") == [(f"wp:{post_id}", "article.published"),
                                                  (f"wp:{post_id}", "article.unpublished")]
    # the vanish check asked for the held ids with include=, not for the whole site
    include = [r for r in wordpress.requests if r.param("include") and r.param("_fields") == "id"]
    assert any({"106", "107", "108"} <= set(r.param("include").split(",")) for r in include)
    # and a post published again comes back as published
    wordpress.edit(106, status="publish")
    poll(config, store, redis_client)
    assert events(store, "wp:106")[-1] == ("wp:106", "article.published")


def test_a_scheduled_post_going_live_without_a_new_modified_time_is_published(wordpress, store, redis_client):
    # given a post scheduled in the past minute and saved before the cursor
    config = wp_config(wordpress)
    scheduled = wordpress.schedule("Embargoed results", at=now_utc() - timedelta(seconds=30))
    wordpress.set_modified([scheduled], now_utc() - timedelta(hours=2))
    poll(config, store, redis_client)
    assert f"wp:{scheduled}" not in articles(store)

    # when WordPress's cron publishes it (status only, modified untouched)
    wordpress.publish_due(scheduled)
    result = poll(config, store, redis_client)

    assert result.published == 1
    assert events(store, f"wp:{scheduled}") == [(f"wp:{scheduled}", "article.published")]


def test_with_an_application_password_it_reads_status_any_and_sees_drafts_as_unpublished(
        wordpress, store, redis_client):
    config = wp_config(wordpress, username=wordpress.username, app_password=wordpress.app_password)
    poll(config, store, redis_client)
    wordpress.unpublish(110, status="private")

    result = poll(config, store, redis_client)

    assert result.unpublished == 1
    assert all(r.authorization for r in wordpress.requests)
    assert any(r.param("status") == "any" for r in wordpress.requests)


def test_a_wrong_application_password_fails_the_poll_without_leaking_it(wordpress, store, redis_client, caplog):
    config = wp_config(wordpress, username=wordpress.username, app_password="wxyz WXYZ 0000 zzzz ZZZZ 9999")
    with caplog.at_level(logging.INFO):
        result = poll(config, store, redis_client)
    assert result.status == "failed" and "401" in result.error and "incorrect_password" in result.error
    assert "wxyz WXYZ" not in caplog.text and "wxyz WXYZ" not in result.error


# --- bad input -----------------------------------------------------------------------------

def test_bad_posts_are_rejected_by_name_and_the_rest_of_the_batch_goes_on(wordpress, store, redis_client, caplog):
    config = wp_config(wordpress)
    wordpress.set_raw(101, "title", {"rendered": ""})
    wordpress.set_raw(102, "date_gmt", "2026-13-45T99:00:00")
    wordpress.set_raw(103, "title", {"rendered": "Breaking\u0000 news\u0007"})
    wordpress.set_raw(104, "content", {"rendered": "<p>" + "x" * 5_000_000 + "</p>", "protected": False})
    wordpress.set_raw(105, "content", {"rendered": '<p>Hi</p><img src="x.jpg" onerror="fetch(\'//evil\')">',
                                       "protected": False})
    wordpress.set_raw(106, "content", {"rendered": '<p>See <a href="javascript:alert(1)">this</a></p>',
                                       "protected": False})
    wordpress.set_raw(107, "title", MISSING)
    # an embed's script is not hostile: it is removed and the story goes on
    wordpress.set_raw(108, "content", {"rendered": '<blockquote class="twitter-tweet"><p>Tweet</p></blockquote>'
                                                   '<script async src="https://platform.twitter.com/widgets.js">'
                                                   '</script><p>Body</p>', "protected": False})

    with caplog.at_level(logging.INFO):
        result = poll(config, store, redis_client)

    # only what cannot become an article is rejected; markup and control characters are cleaned
    assert result.status == "ok" and result.rejected == 4 and result.published == 8
    rows = {r.upstream_id: r for r in rejections(store)}
    assert set(rows) == {"101", "102", "104", "107"}
    assert "title.rendered is empty" in rows["101"].reason
    assert "date_gmt is not a valid date" in rows["102"].reason
    assert "5,000,007 characters; the limit is 2,000,000" in rows["104"].reason
    assert rows["104"].article_id == "wp:104" and rows["104"].where.endswith("/posts/104")
    for upstream_id in rows:
        assert f"source=wp upstream_id={upstream_id} rejected:" in caplog.text
    stored = articles(store)
    assert set(stored) == {f"wp:{i}" for i in (103, 105, 106, 108, 109, 110, 111, 112)}
    assert stored["wp:103"].title == "Breaking news"
    assert "onerror" not in stored["wp:105"].content_html and "<p>Hi</p>" in stored["wp:105"].content_html
    assert "javascript" not in stored["wp:106"].content_html and "this" in stored["wp:106"].content_html
    assert "<script" not in stored["wp:108"].content_html and "<p>Body</p>" in stored["wp:108"].content_html
    # the log says once what was removed
    assert "article=wp:105 cleaned on the way in: content_html: removed <img onerror>" in caplog.text
    assert "article=wp:103 cleaned on the way in: title: removed control characters" in caplog.text
    # and `syndicate status` shows why a post never arrived
    report = article_status(store, "wp:104")
    assert report["article"] is None and "the limit is 2,000,000" in report["rejections"][0]["reason"]

    # when the posts are read again (the overlap) nothing is recorded or logged twice
    caplog.clear()
    with caplog.at_level(logging.INFO):
        poll(config, store, redis_client)
    assert len(rejections(store)) == 4 and "cleaned on the way in" not in caplog.text

    # and a fixed post goes through when it is saved again
    wordpress.posts[104].pop("_raw")
    wordpress.edit(104, content="<p>Fixed</p>")
    poll(config, store, redis_client)
    assert events(store, "wp:104") == [("wp:104", "article.published")]


@pytest.mark.parametrize("mode", ["500", "invalid_json", "timeout", "401"])
def test_each_kind_of_upstream_failure_fails_the_poll_and_keeps_the_cursor(mode, wordpress, sqlite_url,
                                                                           redis_client):
    from worker.store import Store

    store = Store(sqlite_url)
    store.migrate()
    config = source_config(name="wp", type="wordpress", url=wordpress.url, interval="1s", timeout="1s")
    poll(config, store, redis_client)
    with store.session() as s:
        cursor = dict(s.get(SourceStateRow, "wp").cursor)
    wordpress.fail_with(mode)

    result = poll(config, store, redis_client)

    assert result.status == "failed"
    expected = {"500": "HTTP 500", "invalid_json": "not valid JSON", "timeout": "timed out after 1s",
                "401": "HTTP 401"}[mode]
    assert expected in result.error
    with store.session() as s:
        assert s.get(SourceStateRow, "wp").cursor == cursor
    store.dispose()
