"""The X transport against the stand-in X API: posts, deletes, X's counting, duplicate
refusals as the proof of an earlier post, rate limits, credentials."""

import json
import time
from pathlib import Path

import pytest

from config.channels import XChannel
from tests.support import x_server
from tests.support.x_server import XStandIn
from tests.worker.transports.rows import Row as _Row
from tests.worker.transports.rows import assert_no_secret as _assert_no_secret
from tests.worker.transports.stored import stored
from worker.transports.base import PUBLISHED, UNPUBLISHED, UPDATED, Outcome
from worker.transports.text import x_length
from worker.transports.x import XTransport

# The fixture file holds articles as WordPress gives them; a transport gets them as stored.
RAW = json.loads((Path(__file__).parents[2] / "fixtures" / "channel_articles_x_facebook.json").read_text())
ARTICLES = {key: stored(data) for key, data in RAW.items() if key != "_origin"}
# Once stored, this title literally says `&amp;` and `<b>` (its HTML escaped them): readers see that.
LITERAL = stored({**RAW["wp104"], "title": "What &amp;amp; and &lt;b&gt; mean in HTML", "summary": "", "tags": []})
SECRETS = (x_server.CONSUMER_KEY, x_server.CONSUMER_SECRET, x_server.ACCESS_TOKEN, x_server.ACCESS_TOKEN_SECRET)
CREATE = "POST /2/tweets"


@pytest.fixture(scope="module")
def server():
    with XStandIn() as standin:
        yield standin


@pytest.fixture
def api(server):
    server.clear()
    yield server


@pytest.fixture
def transport():
    t = XTransport()
    yield t
    t.close()


def channel(api, **overrides) -> XChannel:
    values = dict(type="x", name="x-main", base_url=api.url, allow_private=True, timeout=5,
                  consumer_key=x_server.CONSUMER_KEY, consumer_secret=x_server.CONSUMER_SECRET,
                  access_token=x_server.ACCESS_TOKEN, access_token_secret=x_server.ACCESS_TOKEN_SECRET)
    values.update(overrides)
    return XChannel(**values)


def assert_no_secret(outcome: Outcome) -> None:
    _assert_no_secret(outcome, SECRETS)


def Row(transport, dest, event_type, data, previous=None):  # noqa: N802 - the shared row, with X's secrets
    return _Row(transport, dest, event_type, data, previous, secrets=SECRETS)


def publish(transport, dest, data):
    row = Row(transport, dest, PUBLISHED, data)
    return row, row.attempt()


def test_publish_posts_signed_text_and_records_id_and_url(api, transport):
    dest = channel(api)
    row, outcome = publish(transport, dest, ARTICLES["wp104"])
    assert outcome.ok and outcome.status_code == 201
    [tweet] = api.tweets.values()
    assert outcome.remote == {"id": tweet["id"], "url": f"https://x.com/i/web/status/{tweet['id']}"}
    # Entities decoded once, the link and the tags in the text.
    assert tweet["text"].startswith("Serbian President’s Flight Diverted to Baku Amid Ukraine’s Record Drone")
    assert ARTICLES["wp104"]["url"] in tweet["text"] and "#Russia #Ukraine" in tweet["text"]
    assert row.saved == [{"attempted": True}]
    assert api.refused() == []
    [req] = api.seen(CREATE)
    assert req.headers["authorization"].startswith("OAuth ") and "oauth_body_hash" not in req.headers["authorization"]


def test_text_that_literally_says_an_entity_or_a_tag_is_posted_as_written(api, transport):
    # Decoded once, when stored: not again on the way to X (plain text, which X escapes itself).
    _, outcome = publish(transport, channel(api), LITERAL)
    assert outcome.ok, outcome.describe()
    [tweet] = api.tweets.values()
    assert tweet["text"].startswith("What &amp; and <b> mean in HTML ")
    assert api.refused() == []


@pytest.mark.parametrize("name", ["long_title", "emoji", "cjk", "combining", "rtl", "entities"])
def test_tricky_titles_fit_280_as_x_counts_them(api, transport, name):
    dest = channel(api)
    _, outcome = publish(transport, dest, ARTICLES[name])
    assert outcome.ok, outcome.describe()
    [tweet] = api.tweets.values()
    assert x_length(tweet["text"]) <= 280
    assert ARTICLES[name]["url"] in tweet["text"]
    assert "&#8217;" not in tweet["text"] and "&amp;" not in tweet["text"]
    assert api.refused() == []


def test_cjk_counts_double_so_fewer_characters_fit(api, transport):
    dest = channel(api, hashtags=False, template="{title}")
    _, outcome = publish(transport, dest, ARTICLES["cjk"])
    assert outcome.ok
    [tweet] = api.tweets.values()
    assert len(tweet["text"]) <= 141 and x_length(tweet["text"]) <= 280 and tweet["text"].endswith("…")


def test_edit_is_skipped_and_keeps_the_post(api, transport):
    dest = channel(api)
    row, first = publish(transport, dest, ARTICLES["wp104"])
    edit = Row(transport, dest, UPDATED, {**ARTICLES["wp104"], "title": "New title"}, previous=first.remote)
    outcome = edit.attempt()
    assert outcome.skipped and "cannot be edited" in outcome.skipped
    assert outcome.remote == first.remote
    assert len(api.seen(CREATE)) == 1


def test_unpublish_deletes_the_post(api, transport):
    dest = channel(api)
    _, first = publish(transport, dest, ARTICLES["wp104"])
    gone = Row(transport, dest, UNPUBLISHED, {"id": "wp:104", "url": ARTICLES["wp104"]["url"]},
               previous=first.remote)
    outcome = gone.attempt()
    assert outcome.ok and outcome.status_code == 200
    assert api.tweets == {} and list(api.deleted) == [first.remote["id"]]
    # Its answer lost, the retry finds the post already gone: done, not failed.
    again = gone.attempt()
    assert again.skipped and "already gone" in again.skipped


def test_lost_answer_then_retry_leaves_exactly_one_post_and_finds_its_id(api, transport):
    dest = channel(api)
    api.lose_answer(CREATE)
    row, lost = publish(transport, dest, ARTICLES["wp101"])
    assert lost.status_code is None and not lost.ok  # no answer: the engine retries
    assert row.remote == {"attempted": True}
    retry = row.attempt()
    assert len(api.tweets) == 1
    [tweet] = api.tweets.values()
    assert retry.ok and retry.skipped and "earlier attempt's answer was lost" in retry.skipped
    assert retry.remote == {"id": tweet["id"], "url": f"https://x.com/i/web/status/{tweet['id']}",
                            "duplicate": True}
    # So the story's withdrawal can delete it.
    gone = Row(transport, dest, UNPUBLISHED, {"id": "wp:101"}, previous=row.remote)
    assert gone.attempt().ok and api.tweets == {}


def test_lost_answer_without_timeline_access_records_unknown_id(api, transport):
    api.timeline_access = False  # a Free-tier app cannot read its timeline
    dest = channel(api)
    api.lose_answer(CREATE)
    row, _ = publish(transport, dest, ARTICLES["wp101"])
    retry = row.attempt()
    assert len(api.tweets) == 1
    assert retry.ok and "its id is unknown" in retry.skipped
    assert retry.remote == {"id": None, "url": None, "duplicate": True}
    gone = Row(transport, dest, UNPUBLISHED, {"id": "wp:101"}, previous=row.remote)
    outcome = gone.attempt()
    assert "unknown id" in outcome.skipped and "by hand" in outcome.skipped and len(api.tweets) == 1
    # An edit of that story does not make a second post either.
    edit = Row(transport, dest, UPDATED, {**ARTICLES["wp101"], "title": "Changed"}, previous=row.remote)
    assert edit.attempt().skipped and len(api.tweets) == 1


@pytest.mark.parametrize("data", [ARTICLES["entities"], LITERAL], ids=["entities", "literal"])
def test_a_text_without_link_is_matched_by_its_text_as_x_escapes_it(api, transport, data):
    dest = channel(api, template="{title}", hashtags=False)
    api.lose_answer(CREATE)
    row, _ = publish(transport, dest, data)
    retry = row.attempt()
    [tweet] = api.tweets.values()
    assert "&" in tweet["text"] and retry.remote["id"] == tweet["id"]


def test_rate_limit_gives_the_reset_as_delta_seconds(api, transport):
    reset = api.rate_limit(reset_in=90)
    dest = channel(api)
    row, outcome = publish(transport, dest, ARTICLES["wp104"])
    assert outcome.status_code == 429 and not outcome.ok
    assert 80 <= int(outcome.retry_after) <= reset - int(time.time()) + 1
    assert outcome.retryable is None and outcome.disable is None
    assert row.attempt().ok and len(api.tweets) == 1


def test_server_error_is_left_to_retry(api, transport):
    api.fail(CREATE, 503, {"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503})
    row, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.status_code == 503 and outcome.retryable is None and not outcome.ok
    assert row.attempt().ok and len(api.tweets) == 1


def test_a_reset_connection_is_retried_without_duplicate(api, transport):
    api.reset(CREATE)
    row, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.error_class == "connection_error"
    retry = row.attempt()
    assert retry.ok and retry.status_code == 201 and len(api.tweets) == 1


@pytest.mark.parametrize("field", ["consumer_secret", "access_token", "access_token_secret", "consumer_key"])
def test_rejected_credentials_disable_the_channel(api, transport, field):
    wrong = "WRONGxx" + getattr(x_server, field.upper())[7:]
    _, outcome = publish(transport, channel(api, **{field: wrong}), ARTICLES["wp104"])
    assert outcome.status_code == 401 and outcome.disable and "credentials" in outcome.disable
    assert not outcome.ok and api.tweets == {}
    assert wrong not in f"{outcome.body} {outcome.error} {outcome.disable}"


def test_a_read_only_app_disables_the_channel(api, transport):
    api.fail(CREATE, 403, {"title": "Forbidden", "type": "about:blank", "status": 403, "detail":
                           "Your client app is not configured with the appropriate oauth1 app permissions for "
                           "this endpoint."})
    _, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.disable and "app permissions" in outcome.disable


def test_other_forbidden_fails_at_once_with_the_detail(api, transport):
    api.fail(CREATE, 403, {"title": "Forbidden", "type": "about:blank", "status": 403,
                           "detail": "You are not permitted to perform this action."})
    _, outcome = publish(transport, channel(api), ARTICLES["wp104"])
    assert outcome.retryable is False and outcome.disable is None
    assert "not permitted to perform this action" in outcome.describe()


def test_a_post_x_would_refuse_as_too_long_is_not_sent(api, transport):
    dest = channel(api, template="{url}", hashtags=False)
    data = {**ARTICLES["wp104"], "url": "https://example.com/" + "a" * 400}
    row = Row(transport, dest, PUBLISHED, data)
    row.prepared = {"text": "x " * 200 + data["url"], "url": data["url"]}
    outcome = row.attempt()
    assert outcome.error_class == "too_long" and outcome.retryable is False
    assert api.requests == []


def test_a_first_attempt_refused_as_duplicate_counts_as_posted(api, transport):
    dest = channel(api)
    publish(transport, dest, ARTICLES["wp104"])
    # A second delivery of the same text (e.g. a replay): X refuses it; the post exists.
    other, outcome = publish(transport, dest, ARTICLES["wp104"])
    assert outcome.skipped and "duplicate of a post the account already made" in outcome.skipped
    assert len(api.tweets) == 1 and outcome.remote["id"] == next(iter(api.tweets))
