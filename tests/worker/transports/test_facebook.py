"""The Facebook Pages transport against the stand-in Graph API: posts, edits, deletes,
Graph error codes, the lost-answer defence (adopt the page's post rather than post twice)."""

import json
from pathlib import Path

import pytest

from config.channels import FacebookChannel
from tests.support import facebook_server as fb
from tests.support.facebook_server import FacebookStandIn
from tests.worker.transports.rows import Row as _Row
from tests.worker.transports.stored import stored
from worker.transports.base import PUBLISHED, UNPUBLISHED, UPDATED
from worker.transports.facebook import FacebookTransport
from worker.transports.text import plain, utf16_length

# The fixture file holds articles as WordPress gives them; a transport gets them as stored.
RAW = json.loads((Path(__file__).parents[2] / "fixtures" / "channel_articles_x_facebook.json").read_text())
ARTICLES = {key: stored(data) for key, data in RAW.items() if key != "_origin"}
# Once stored, this title literally says `&amp;` and `<b>` (its HTML escaped them): readers see that.
LITERAL = stored({**RAW["wp104"], "title": "What &amp;amp; and &lt;b&gt; mean in HTML", "summary": "", "tags": []})


@pytest.fixture(scope="module")
def server():
    with FacebookStandIn() as standin:
        yield standin


@pytest.fixture
def api(server):
    server.clear()
    yield server
    # The token never travels in a URL.
    assert server.token_in_query() == []
    assert all(fb.PAGE_TOKEN not in r.path for r in server.requests)


@pytest.fixture
def transport():
    t = FacebookTransport()
    yield t
    t.close()


def channel(api, **overrides) -> FacebookChannel:
    values = dict(type="facebook", name="fb-page", base_url=api.base_url, allow_private=True, timeout=5,
                  page_id=fb.PAGE_ID, page_token=fb.PAGE_TOKEN, template="{title}\n\n{summary} {hashtags}")
    values.update(overrides)
    return FacebookChannel(**values)


def Row(transport, dest, event_type, data, previous=None):  # noqa: N802 - the shared row, with the page token
    return _Row(transport, dest, event_type, data, previous, secrets=(fb.PAGE_TOKEN,))


def publish(transport, dest, data):
    row = Row(transport, dest, PUBLISHED, data)
    return row, row.attempt()


def test_publish_posts_message_and_link(api, transport):
    row, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.ok and outcome.status_code == 200
    [post] = api.posts.values()
    assert outcome.remote == {"id": post["id"], "url": f"https://www.facebook.com/{post['id']}"}
    assert post["id"].startswith(fb.PAGE_ID + "_")
    assert post["link"] == ARTICLES["wp104"]["url"]
    assert post["message"].startswith("Serbian President’s Flight Diverted to Baku Amid Ukraine’s Record Drone")
    assert "reporters summarise the key facts" in post["message"] and post["message"].endswith("#Russia #Ukraine")
    assert "&#8217;" not in post["message"] and "<p>" not in post["message"]
    [req] = api.seen(fb.FEED)
    assert req.headers["authorization"] == f"Bearer {fb.PAGE_TOKEN}" and "access_token" not in req.form()
    assert api.refused() == []


def test_text_that_literally_says_an_entity_or_a_tag_is_posted_as_written(api, transport):
    # Decoded once, when stored: not again on the way to Facebook (a plain-text message).
    _, outcome = publish(transport, channel(api), LITERAL)
    assert outcome.ok, outcome.describe()
    [post] = api.posts.values()
    assert post["message"].startswith("What &amp; and <b> mean in HTML")
    assert api.refused() == []


@pytest.mark.parametrize("name", ["long_title", "emoji", "cjk", "combining", "rtl", "entities"])
def test_tricky_titles_are_posted_whole(api, transport, name):
    _, outcome = publish(transport, channel(api), ARTICLES[name])
    assert outcome.ok, outcome.describe()
    [post] = api.posts.values()
    # Far within 63,206: the whole title, decoded, no cut.
    assert post["message"].startswith(plain(ARTICLES[name]["title"]) + "\n\n")
    assert api.refused() == []


def test_a_message_is_fitted_to_63206_utf16_units(api, transport):
    # Astral emoji count two UTF-16 units each: 40,000 of them must be cut. (Storage keeps
    # 1,000 characters of a title; the transport fits whatever it is given all the same.)
    data = {**ARTICLES["wp104"], "title": "😀 " * 40_000, "summary": ""}
    _, outcome = publish(transport, channel(api, template="{title}", hashtags=False), data)
    assert outcome.ok, outcome.describe()
    [post] = api.posts.values()
    assert 60_000 < utf16_length(post["message"]) <= 63_206 and post["message"].endswith("…")


def test_edit_changes_the_message(api, transport):
    dest = channel(api)
    _, first = publish(transport, dest, ARTICLES["wp104"])
    edited = {**ARTICLES["wp104"], "title": "Serbian president lands safely in Baku"}
    outcome = Row(transport, dest, UPDATED, edited, previous=first.remote).attempt()
    assert outcome.ok and outcome.remote == first.remote
    assert api.posts[first.remote["id"]]["message"].startswith("Serbian president lands safely in Baku")
    assert len(api.posts) == 1 and api.refused() == []


def test_edit_of_a_post_deleted_on_the_page_fails_clearly(api, transport):
    dest = channel(api)
    _, first = publish(transport, dest, ARTICLES["wp104"])
    api.posts.clear()
    outcome = Row(transport, dest, UPDATED, ARTICLES["wp104"], previous=first.remote).attempt()
    assert outcome.retryable is False and "gone from the page" in outcome.error


def test_unpublish_deletes_and_a_repeat_counts_as_done(api, transport):
    dest = channel(api)
    _, first = publish(transport, dest, ARTICLES["wp104"])
    gone = Row(transport, dest, UNPUBLISHED, {"id": "wp:104", "url": ARTICLES["wp104"]["url"]},
               previous=first.remote)
    api.lose_answer(fb.DELETE)
    lost = gone.attempt()
    assert lost.status_code is None and api.posts == {}
    again = gone.attempt()
    assert again.ok and again.skipped and "already gone" in again.skipped


def test_lost_answer_then_retry_adopts_the_post_instead_of_posting_twice(api, transport):
    dest = channel(api)
    api.lose_answer(fb.FEED)
    row, lost = publish(transport, dest, ARTICLES["wp101"])
    assert lost.status_code is None and not lost.ok
    assert row.remote.get("attempted_at")  # marked before the risky step
    retry = row.attempt()
    assert len(api.posts) == 1
    [post] = api.posts.values()
    assert retry.ok and "answer was lost" in retry.skipped
    assert retry.remote == {"id": post["id"], "url": f"https://www.facebook.com/{post['id']}"}
    assert len(api.seen(fb.FEED)) == 1 and len(api.seen(fb.LIST)) == 1
    # The adopted post is edited and deleted like any other.
    gone = Row(transport, dest, UNPUBLISHED, {"id": "wp:101"}, previous=row.remote).attempt()
    assert gone.ok and api.posts == {}


def test_lost_request_then_retry_posts_once(api, transport):
    # The connection dropped before the post was made: the lookup finds nothing, it posts.
    dest = channel(api)
    api.reset(fb.FEED)
    row, lost = publish(transport, dest, ARTICLES["wp101"])
    assert lost.error_class == "connection_error"
    retry = row.attempt()
    assert retry.ok and retry.status_code == 200 and len(api.posts) == 1
    assert len(api.seen(fb.LIST)) == 1


def test_a_definite_refusal_clears_the_mark(api, transport):
    dest = channel(api)
    api.graph_fault(fb.FEED, 368, "The action attempted has been deemed abusive or is otherwise disallowed")
    row, refused = publish(transport, dest, ARTICLES["wp101"])
    assert refused.retryable is False and "code 368" in refused.error
    assert row.remote == {"attempted_at": None}


def test_duplicate_refusal_adopts_the_existing_post(api, transport):
    dest = channel(api)
    _, first = publish(transport, dest, ARTICLES["wp104"])
    _, again = publish(transport, dest, ARTICLES["wp104"])
    assert again.ok and "duplicate" in again.skipped and again.remote["id"] == first.remote["id"]
    assert len(api.posts) == 1


@pytest.mark.parametrize("code,message,status", [
    (4, "(#4) Application request limit reached", 403),
    (17, "(#17) User request limit reached", 400),
    (32, "(#32) Page request limit reached", 400),
    (613, "(#613) Calls to this api have exceeded the rate limit.", 400),
    (2, "An unexpected error has occurred. Please retry your request later.", 500),
])
def test_throttling_and_transient_codes_are_retried(api, transport, code, message, status):
    api.graph_fault(fb.FEED, code, message, status=status, regain_minutes=7)
    row, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.retryable is True and not outcome.ok and outcome.disable is None
    assert outcome.retry_after == "420" and f"code {code}" in outcome.error
    assert api.posts == {}
    retry = row.attempt()
    assert retry.ok and len(api.posts) == 1


def test_an_expired_token_disables_the_channel(api, transport):
    api.page_token = "EAAnewtokenAfterRotationZZZZZ"  # the configured one no longer works
    _, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.status_code == 400 and "code 190" in outcome.disable and "page token" in outcome.disable
    assert api.posts == {}


@pytest.mark.parametrize("code", [10, 200, 230])
def test_a_missing_permission_disables_the_channel(api, transport, code):
    api.graph_fault(fb.FEED, code, f"(#{code}) Requires pages_manage_posts permission", status=403)
    _, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.disable and "pages_manage_posts" in outcome.disable


def test_the_wrong_page_fails_at_once(api, transport):
    _, outcome = publish(transport, channel(api, page_id="999999"), ARTICLES["wp104"])
    assert outcome.retryable is False and outcome.disable is None and "code 100" in outcome.error


def test_a_server_error_without_graph_body_is_retried(api, transport):
    api.fail(fb.FEED, 502, "Bad Gateway")
    row, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.status_code == 502 and outcome.retryable is None and not outcome.ok
    # A 5xx keeps the mark: the post may have been made; the retry looks first.
    assert row.remote.get("attempted_at")
    assert row.attempt().ok and len(api.posts) == 1


def test_an_unknown_duplicate_is_neither_edited_nor_posted_again(api, transport):
    dest = channel(api)
    previous = {"id": None, "url": None, "duplicate": True}
    outcome = Row(transport, dest, UPDATED, ARTICLES["wp104"], previous=previous).attempt()
    assert outcome.skipped and "unknown id" in outcome.skipped and api.requests == []
