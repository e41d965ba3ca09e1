"""The LinkedIn transport against the stand-in: article posts as the organization, text in
LinkedIn's "little" format fitted to 3,000 characters, thumbnails, edits, withdrawals, the
platform's failures, and a lost answer that must not make a second post."""

from __future__ import annotations

import pytest

from config.channels import LinkedInChannel
from tests.support.linkedin_server import LinkedInServer, utf16_length
from tests.worker.transports.linkedin_threads_helpers import (
    Row,
    leaked,
    literal_article,
    tricky_articles,
    wordpress_articles,
)
from worker.transports.base import PUBLISHED, UNPUBLISHED, UPDATED
from worker.transports.linkedin import COMMENTARY_LIMIT, LinkedInTransport, escape_little
from worker.transports.text import ELLIPSIS

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def server():
    with LinkedInServer() as s:
        s.pictures["putin.jpg"] = (PNG, "image/png")
        yield s


@pytest.fixture
def transport():
    t = LinkedInTransport()
    yield t
    t.close()


def channel(server, **extra) -> LinkedInChannel:
    values = dict(name="lnn-linkedin", type="linkedin", base_url=server.url, organization=server.organization,
                  token=server.token, allow_private=True, timeout=2, template="{title}\n\n{summary}\n{url} {hashtags}")
    values.update(extra)
    return LinkedInChannel(**values)


def story(server, n: int = 0, image: bool = True) -> dict:
    data = wordpress_articles()[n]
    data["image"] = {"url": f"{server.url}/_images/putin.jpg", "alt": "Putin", "width": 1200,
                     "height": 800} if image else None
    return data


def publish(transport, dest, data, row=None) -> tuple[Row, object]:
    row = row or Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    return row, row.attempt(transport, dest, prepared)


# --- publishing ---------------------------------------------------------------------------

def test_a_story_becomes_one_article_post_of_the_organization_with_its_thumbnail(server, transport):
    dest = channel(server)
    data = story(server)
    row, outcome = publish(transport, dest, data)
    assert outcome.ok and outcome.status_code == 201, outcome.describe()
    post = server.only_post()
    assert outcome.remote == {"id": post.urn, "url": f"https://www.linkedin.com/feed/update/{post.urn}"}
    body = post.body
    assert body["author"] == server.organization
    assert body["visibility"] == "PUBLIC" and body["lifecycleState"] == "PUBLISHED"
    assert body["distribution"] == {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                                    "thirdPartyDistributionChannels": []}
    assert body["isReshareDisabledByAuthor"] is False
    article = body["content"]["article"]
    assert article["source"] == data["url"]
    assert article["title"] == data["title"]
    assert article["description"].startswith("President Vladimir Putin held discussions")
    assert server.images[article["thumbnail"]] == PNG
    # The summary's "[…]" is escaped, so readers see all of it (unescaped, LinkedIn cuts there).
    assert "\\[…\\]" in post.commentary
    assert post.rendered == transport.prepare(dest, PUBLISHED, data)["text"]
    assert post.rendered.startswith(data["title"]) and "[…]" in post.rendered
    assert "#Russia #Syria #Kremlin" in post.rendered
    assert server.refused() == []
    assert leaked(row.outcomes, server.token) == []
    [create] = server.seen("create")
    assert create.headers["linkedin-version"] == dest.api_version
    assert create.headers["x-restli-protocol-version"] == "2.0.0"


def test_every_reserved_character_reaches_readers_and_hashtags_stay_hashtags(server, transport):
    dest = channel(server)
    data = [a for a in tricky_articles() if a["id"] == "t:entities"][0]
    row, outcome = publish(transport, dest, data)
    assert outcome.ok, outcome.describe()
    post = server.only_post()
    expected = transport.prepare(dest, PUBLISHED, data)["text"]
    assert post.rendered == expected
    assert "Smith & Jones’ “radical” plan: costs (est.) [draft] <leaked> @ 5% *again* ~ under_review #1 | C\\C++" \
        in post.rendered
    assert "[…] would cost £2bn {provisional} & more […]" in post.rendered
    assert data["url"] in post.rendered  # the URL's "_" and "()" come back as they were
    assert "#SmithJones #Budget2027" in post.rendered and "\\#SmithJones" not in post.commentary
    assert server.refused() == []


def test_text_that_literally_says_an_entity_or_a_tag_reaches_readers_as_written(server, transport):
    # Decoded once, when stored; LinkedIn's little text only escapes its reserved "<" and ">".
    dest = channel(server)
    data = literal_article()
    assert data["title"] == "What &amp; and <b> mean in HTML"
    row, outcome = publish(transport, dest, data)
    assert outcome.ok, outcome.describe()
    post = server.only_post()
    assert post.commentary.startswith("What &amp; and \\<b\\> mean in HTML")
    assert post.rendered.startswith("What &amp; and <b> mean in HTML")
    assert post.body["content"]["article"]["title"] == "What &amp; and <b> mean in HTML"
    assert server.refused() == []


def test_escaping_keeps_hashtag_signs_only_where_told():
    assert escape_little("a (b) #c_d", keep={6}) == "a \\(b\\) #c\\_d"
    assert escape_little("\\") == "\\\\"


@pytest.mark.parametrize("article", tricky_articles(), ids=lambda a: a["id"])
def test_long_and_tricky_stories_fit_3000_characters_as_linkedin_counts_them(server, transport, article):
    dest = channel(server, template="{title} — {summary}\n\n{title}\n\n{summary}\n\n{title} {url} {hashtags}")
    data = dict(article, summary=(article["summary"] or article["title"]) * 4)
    row, outcome = publish(transport, dest, data)
    assert outcome.ok, outcome.describe()
    post = server.only_post()
    assert utf16_length(post.commentary) <= COMMENTARY_LIMIT
    assert post.rendered == transport.prepare(dest, PUBLISHED, data)["text"]
    assert data["url"] in post.rendered
    assert ELLIPSIS in post.rendered
    assert server.refused() == []


# --- edits and withdrawals ----------------------------------------------------------------

def test_an_edited_story_edits_the_post_and_a_withdrawn_one_deletes_it(server, transport):
    dest = channel(server)
    data = story(server)
    first, outcome = publish(transport, dest, data)
    live = outcome.remote
    edited = dict(data, title="Putin and Sharaa (updated) agree on bases")
    row = Row(UPDATED, data["id"], previous=live)
    outcome = row.attempt(transport, dest, transport.prepare(dest, UPDATED, edited))
    assert outcome.ok and outcome.status_code == 204, outcome.describe()
    assert outcome.remote == live
    post = server.only_post()
    assert post.rendered.startswith("Putin and Sharaa (updated) agree on bases")
    assert len(post.updates) == 1
    [update] = server.seen("update")
    assert update.headers["x-restli-method"] == "PARTIAL_UPDATE"

    gone = Row(UNPUBLISHED, data["id"], previous=live)
    prepared = transport.prepare(dest, UNPUBLISHED, {"id": data["id"], "url": data["url"]})
    outcome = gone.attempt(transport, dest, prepared)
    assert outcome.ok and outcome.status_code == 204
    assert server.posts == {} and server.deleted == [live["id"]]
    # Withdrawn twice (a replay): the post is already gone, which is what was wanted.
    again = Row(UNPUBLISHED, data["id"], previous=live).attempt(transport, dest, prepared)
    assert again.ok and again.skipped and "already gone" in again.skipped
    # An edit of a post someone deleted on LinkedIn is skipped, not failed.
    late = Row(UPDATED, data["id"], previous=live).attempt(transport, dest, transport.prepare(dest, UPDATED, edited))
    assert late.ok and late.skipped
    assert [(r.route, r.status) for r in server.refused()] == [("delete", 404), ("update", 404)]


# --- lost answers -------------------------------------------------------------------------

def test_a_post_whose_answer_was_lost_is_found_not_made_again(server, transport):
    dest = channel(server)
    data = story(server)
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.lose_answer("create")
    lost = row.attempt(transport, dest, prepared)
    assert not lost.ok and lost.status_code is None and lost.error_class == "connection_error"
    assert len(server.posts) == 1  # LinkedIn made it; we never heard
    assert row.remote.get("attempted_at")  # saved before the POST
    found = row.attempt(transport, dest, prepared)
    assert found.ok, found.describe()
    post = server.only_post()
    assert found.remote["id"] == post.urn
    assert len(server.seen("create")) == 1 and len(server.seen("find")) == 1
    # A third attempt (say, the engine lost our outcome) posts nothing either.
    again = row.attempt(transport, dest, prepared)
    assert again.ok and len(server.posts) == 1
    assert leaked(row.outcomes, server.token) == []


def test_a_post_cut_off_before_linkedin_made_it_is_made_once_on_retry(server, transport):
    dest = channel(server)
    data = story(server, image=False)
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.reset("create")
    assert row.attempt(transport, dest, prepared).error_class == "connection_error"
    assert server.posts == {}
    outcome = row.attempt(transport, dest, prepared)
    assert outcome.ok and outcome.status_code == 201
    server.only_post()
    assert server.refused() == []


def test_without_permission_to_list_posts_a_lost_answer_is_never_posted_again(transport):
    with LinkedInServer(scopes=("w_organization_social",)) as server:
        dest = channel(server)
        data = story(server, image=False)
        row = Row(article_id=data["id"])
        prepared = transport.prepare(dest, PUBLISHED, data)
        server.lose_answer("create")
        row.attempt(transport, dest, prepared)
        outcome = row.attempt(transport, dest, prepared)
        assert outcome.disable and "r_organization_social" in outcome.disable
        assert len(server.posts) == 1


# --- thumbnails ---------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["picture missing", "initializeUpload fails", "upload fails", "not an image"])
def test_a_thumbnail_that_cannot_be_uploaded_is_left_out_not_the_post(server, transport, failure):
    dest = channel(server)
    data = story(server)
    if failure == "picture missing":
        data["image"]["url"] = f"{server.url}/_images/nothing.jpg"
    elif failure == "initializeUpload fails":
        server.fail("images", 500, {"status": 500, "message": "Internal Server Error"})
    elif failure == "upload fails":
        server.fail("upload", 500, {"status": 500, "message": "Internal Server Error"})
    else:
        server.pictures["putin.jpg"] = (b"<html>login</html>", "text/html")
    row, outcome = publish(transport, dest, data)
    assert outcome.ok, outcome.describe()
    assert "thumbnail" not in server.only_post().body["content"]["article"]


# --- failures -----------------------------------------------------------------------------

def test_throttling_is_retried_and_the_retry_posts_once(server, transport):
    dest = channel(server)
    data = story(server, image=False)
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.fail("create", 429, {"status": 429, "message": "Resource level throttle APPLICATION DAY limit "
                                "for calls to this resource is reached."})
    throttled = row.attempt(transport, dest, prepared)
    assert throttled.status_code == 429 and not throttled.ok and not throttled.disable
    assert throttled.retryable is None  # the engine retries 429 on the schedule
    server.fail("create", 503, {"status": 503, "message": "Service Unavailable"})
    assert row.attempt(transport, dest, prepared).status_code == 503
    # Throttled and unavailable POSTs made nothing: the look-up finds nothing, one post is made.
    assert row.attempt(transport, dest, prepared).ok
    server.only_post()


def test_a_rejected_token_disables_the_channel_and_says_tokens_expire(server, transport):
    dest = channel(server, token="li-token-expired-Secret456")
    row, outcome = publish(transport, dest, story(server, image=False))
    assert outcome.status_code == 401 and outcome.disable and "60 days" in outcome.disable
    assert leaked(row.outcomes, dest.token, server.token) == []
    assert server.posts == {}


def test_a_token_without_the_posting_permission_disables_the_channel(transport):
    with LinkedInServer(scopes=("r_organization_social",)) as server:
        dest = channel(server)
        row, outcome = publish(transport, dest, story(server, image=False))
        assert outcome.status_code == 403 and "w_organization_social" in outcome.disable
        assert server.posts == {}


def test_a_sunset_api_version_disables_the_channel_with_what_to_change(server, transport):
    dest = channel(server, api_version="202301")
    row, outcome = publish(transport, dest, story(server, image=False))
    assert outcome.status_code == 426 and "api_version" in outcome.disable
    assert "202301" in outcome.error


def test_a_refused_post_fails_at_once(server, transport):
    dest = channel(server)
    server.fail("create", 422, {"status": 422, "message": "/content/article/source: invalid URL"})
    row, outcome = publish(transport, dest, story(server, image=False))
    assert outcome.status_code == 422 and not outcome.ok and outcome.disable is None
    assert outcome.retryable is None  # a 4xx: the engine fails it
    assert "invalid URL" in outcome.error
