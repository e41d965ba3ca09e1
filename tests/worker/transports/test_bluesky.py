"""The Bluesky transport against the stand-in PDS: posts, link cards, facets, limits as
Bluesky counts them, no duplicates after lost answers, edits skipped, deletes."""

from __future__ import annotations

import re

import pytest

from tests.support.bluesky_server import (
    CREATE_RECORD,
    CREATE_SESSION,
    DELETE_RECORD,
    GET_RECORD,
    UPLOAD_BLOB,
    BlueskyServer,
    ImageServer,
)
from tests.worker.transports.bluesky_helpers import (
    HANDLE,
    Row,
    article,
    assert_no_secrets,
    channel,
    reading,
)
from worker.transports import transport_class
from worker.transports.base import UNPUBLISHED, UPDATED
from worker.transports.bluesky import BlueskyTransport, bluesky_length, new_tid
from worker.transports.text import grapheme_list, graphemes, plain

TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


@pytest.fixture
def pds():
    server = BlueskyServer(handle=HANDLE).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def images():
    server = ImageServer().start()
    yield server
    server.stop()


@pytest.fixture
def transport(redis_client):
    t = BlueskyTransport(redis_client=redis_client)
    yield t
    t.close()


@pytest.fixture
def dest(pds):
    return channel(pds)


def _facets(record: dict, kind: str) -> list[tuple[str, str]]:
    """(covered text, uri or tag) for each facet of a kind, read back from the bytes."""
    data = record["text"].encode()
    out = []
    for facet in record.get("facets", []):
        feature = facet["features"][0]
        if feature["$type"].endswith("#" + kind):
            covered = data[facet["index"]["byteStart"]:facet["index"]["byteEnd"]].decode()
            out.append((covered, feature.get("uri") or feature.get("tag")))
    return out


# --- publishing ------------------------------------------------------------------------

def test_registry_names_this_class():
    assert transport_class("bluesky") is BlueskyTransport


def test_publish_makes_one_post_with_link_card_thumbnail_tags_and_language(pds, images, transport, dest, caplog):
    caplog.set_level("DEBUG")
    data = article("putin", images.url)
    row = Row(transport, dest, data, on_save=lambda remote: seen_at_save.append(len(pds.seen(CREATE_RECORD))))
    seen_at_save: list[int] = []

    outcome = row.attempt()

    assert reading(outcome) == "delivered", outcome.describe()
    assert pds.refused() == []
    # The record key was saved before anything was written.
    assert seen_at_save == [0] and TID_RE.match(row.saves[0]["rkey"]) and row.saves[0]["created_at"]
    rkey = row.saves[0]["rkey"]
    assert list(pds.records) == [rkey]
    record = pds.records[rkey]["value"]
    assert record["text"] == ("Putin Strengthens Relations with Syrian President Amidst Strategic Military Concerns "
                              "#Russia #Syria #MiddleEast")
    assert record["createdAt"] == row.saves[0]["created_at"]
    assert record["langs"] == ["en"]
    assert _facets(record, "tag") == [("#Russia", "Russia"), ("#Syria", "Syria"), ("#MiddleEast", "MiddleEast")]
    assert _facets(record, "link") == []  # the default template leaves the URL to the card
    external = record["embed"]["external"]
    assert external["uri"] == data["url"]
    assert external["title"] == plain(data["title"])
    assert external["description"].startswith("President Vladimir Putin held discussions with Syria’s Ahmed")
    assert external["thumb"]["mimeType"] == "image/png" and external["thumb"]["size"] == len(images.small)
    assert outcome.remote == {"id": pds.post_uri(rkey), "uri": pds.post_uri(rkey), "cid": pds.records[rkey]["cid"],
                              "rkey": rkey, "url": f"https://bsky.app/profile/{HANDLE}/post/{rkey}"}
    assert len(pds.seen(CREATE_SESSION)) == 1
    assert_no_secrets(pds, row.outcomes, caplog)


def test_a_template_with_the_url_links_it_with_a_facet_at_utf8_byte_offsets(pds, images, transport):
    dest = channel(pds, template="{title} {url} {hashtags}")
    for key in ("non_ascii_url", "skin_tones_flags", "entities"):
        data = article(key, images.url)
        assert reading(Row(transport, dest, data).attempt()) == "delivered"
    assert pds.refused() == []
    for entry in pds.records.values():
        links = _facets(entry["value"], "link")
        assert len(links) == 1 and links[0][0] == links[0][1] and links[0][1].startswith("https://london-news-net")
        for covered, tag in _facets(entry["value"], "tag"):
            assert covered == "#" + tag


def test_entities_are_decoded_once_and_multi_word_tags_become_camel_case(pds, transport, dest):
    Row(transport, dest, article("serbia_entities")).attempt()
    Row(transport, dest, article("entities")).attempt()
    texts = pds.post_texts()
    assert texts[0].startswith("Serbian President’s Flight Diverted to Baku Amid Ukraine’s Record Drone Assault")
    assert "#DroneWarfare" in texts[0]
    assert texts[1] == "Markets & Money: Investors’ “best” quarter — <b>record</b> gains #MarketsMoney #WallSt #SãoPaulo"
    assert not any("&#" in t or "&amp;" in t for t in texts)
    # A title that, once stored, literally says `&amp;` and `<b>` reaches readers as written.
    Row(transport, dest, article("entities", title="What &amp;amp; and &lt;b&gt; mean in HTML", tags=[])).attempt()
    assert pds.post_texts()[2] == "What &amp; and <b> mean in HTML"
    assert pds.refused() == []


# Storage keeps at most 1,000 characters of a title, cut at a word: the fixture's 1,295-character
# ZWJ title would be stored as "Families celebrate…". 140 families (7 code points, 25 bytes each)
# are stored whole: 999 characters, 159 graphemes, 3,519 UTF-8 bytes, over Bluesky's byte limit only.
STORABLE_TITLES = {"emoji_zwj": {"title": "Families celebrate " + "👨‍👩‍👧‍👦" * 140}}


@pytest.mark.parametrize("key", ["long_title", "emoji_zwj", "skin_tones_flags", "combining", "arabic", "hebrew",
                                 "cjk"])
def test_long_and_tricky_titles_fit_as_bluesky_counts_and_are_cut_between_graphemes(pds, transport, dest, key):
    data = article(key, **STORABLE_TITLES.get(key, {}))
    outcome = Row(transport, dest, data).attempt()

    assert reading(outcome) == "delivered", outcome.describe()
    assert pds.refused() == []
    (text,) = pds.post_texts()
    assert graphemes(text) <= 300 and len(text.encode()) <= 3000
    title = grapheme_list(plain(data["title"]))
    if "…" in text:
        kept = grapheme_list(text.split("…")[0])
        assert kept == title[:len(kept)], "cut inside a grapheme (emoji, flag, combining mark)"
    else:
        assert text.startswith(plain(data["title"]))
    if key == "emoji_zwj":
        assert len(text.encode()) > 2500, "the byte limit, not the grapheme count, decided this cut"
    (record,) = [r["value"] for r in pds.records.values()]
    assert record["langs"] == [data["language"]]


def test_bluesky_length_counts_both_limits():
    assert bluesky_length("a" * 300) == 300
    assert bluesky_length("👨‍👩‍👧‍👦" * 120) == 300  # 120 graphemes, 3000 bytes
    assert bluesky_length("👨‍👩‍👧‍👦" * 121) > 300


def test_channel_language_wins_and_a_bad_article_language_is_left_out(pds, transport):
    Row(transport, channel(pds, language="en-GB"), article("putin")).attempt()
    # Storage drops a bad language; the transport still checks what it is given.
    Row(transport, channel(pds), dict(article("putin"), language="not a language!")).attempt()
    langs = [r["value"].get("langs") for r in pds.records.values()]
    assert langs == [["en-GB"], None]


def test_tids_are_13_sortable_characters():
    assert new_tid(0, 0) == "2222222222222"
    earlier, later = new_tid(1_700_000_000_000_000), new_tid(1_700_000_000_000_001)
    assert TID_RE.match(earlier) and TID_RE.match(later) and earlier < later
    assert len({new_tid() for _ in range(200)}) == 200


# --- link card thumbnails --------------------------------------------------------------

@pytest.mark.parametrize("image", ["big.png", "page.html", "gone.png", None])
def test_a_thumbnail_that_does_not_fit_is_left_out_not_the_post(pds, images, transport, dest, image):
    data = article("putin", images.url)
    data["image"] = {"url": f"{images.url}/{image}"} if image else None
    outcome = Row(transport, dest, data).attempt()
    assert reading(outcome) == "delivered"
    (record,) = [r["value"] for r in pds.records.values()]
    assert "thumb" not in record["embed"]["external"]
    assert pds.seen(UPLOAD_BLOB) == [] and pds.refused() == []


def test_an_unreachable_image_server_leaves_the_thumbnail_out(pds, transport, dest):
    data = article("putin", "http://127.0.0.1:9")  # nothing listens on port 9
    assert reading(Row(transport, dest, data).attempt()) == "delivered"
    (record,) = [r["value"] for r in pds.records.values()]
    assert "thumb" not in record["embed"]["external"]


# --- edits and deletes -----------------------------------------------------------------

def test_an_edit_is_skipped_and_keeps_the_post(pds, transport, dest):
    first = Row(transport, dest, article("putin"))
    first.attempt()
    requests_before = len(pds.requests)

    edit = Row(transport, dest, article("putin", title="A corrected headline"), event_type=UPDATED,
               previous=first.remote)
    outcome = edit.attempt()

    assert outcome.skipped and "cannot be edited" in outcome.skipped
    assert outcome.remote == first.remote
    assert len(pds.requests) == requests_before and len(pds.records) == 1


def test_an_update_with_nothing_posted_yet_makes_the_post(pds, transport, dest):
    outcome = Row(transport, dest, article("putin"), event_type=UPDATED, previous=None).attempt()
    assert reading(outcome) == "delivered" and len(pds.records) == 1


def test_unpublishing_deletes_the_post(pds, transport, dest):
    first = Row(transport, dest, article("putin"))
    first.attempt()
    rkey = first.remote["rkey"]

    gone = Row(transport, dest, {"id": "wp:101", "url": article("putin")["url"], "version": "2"},
               event_type=UNPUBLISHED, previous=first.remote)
    outcome = gone.attempt()

    assert reading(outcome) == "delivered"
    assert pds.records == {} and pds.deleted == [rkey]
    (req,) = pds.seen(DELETE_RECORD)
    assert req.json() == {"repo": pds.did, "collection": "app.bsky.feed.post", "rkey": rkey}
    # A repeated delete (a retry after a lost answer) is harmless.
    assert reading(gone.attempt()) == "delivered"
    assert pds.refused() == []


def test_unpublishing_with_nothing_posted_is_skipped(pds, transport, dest):
    outcome = Row(transport, dest, {"id": "wp:1", "url": "https://x.example/1"}, event_type=UNPUBLISHED).attempt()
    assert outcome.skipped == "no post to delete" and pds.requests == []


def _unresolved(pds, transport, dest, *, made: bool) -> dict:
    """The remote state a failed row leaves when its last answer was lost (made=True) or
    when it never got its post out (made=False), as the engine hands it on: no id."""
    row = Row(transport, dest, article("putin"))
    if made:
        pds.lose_answer(CREATE_RECORD)
    else:
        pds.fail(CREATE_RECORD, 400, {"error": "InvalidRequest", "message": "refused"})
    row.attempt()
    return {**row.remote, "id": None, "unresolved": True}


@pytest.mark.parametrize("event", [UPDATED, "article.published"])
def test_an_unresolved_earlier_post_that_exists_is_not_posted_again(pds, transport, dest, event):
    previous = _unresolved(pds, transport, dest, made=True)
    outcome = Row(transport, dest, article("putin"), event_type=event, previous=previous).attempt()
    assert outcome.skipped and "cannot be edited" in outcome.skipped
    rkey = previous["rkey"]
    assert outcome.remote["id"] == pds.post_uri(rkey) and outcome.remote["url"].endswith(f"/post/{rkey}")
    assert list(pds.records) == [rkey]


def test_an_unresolved_earlier_post_that_never_went_out_is_posted(pds, transport, dest):
    previous = _unresolved(pds, transport, dest, made=False)
    outcome = Row(transport, dest, article("putin"), event_type=UPDATED, previous=previous).attempt()
    assert reading(outcome) == "delivered" and not outcome.skipped
    assert list(pds.records) == [outcome.remote["rkey"]] and outcome.remote["rkey"] != previous["rkey"]


def test_an_unresolved_earlier_post_is_found_and_deleted_on_unpublish(pds, transport, dest):
    previous = _unresolved(pds, transport, dest, made=True)
    gone = {"id": "wp:101", "url": article("putin")["url"]}
    outcome = Row(transport, dest, gone, event_type=UNPUBLISHED, previous=previous).attempt()
    assert reading(outcome) == "delivered" and not outcome.skipped and outcome.remote["deleted"] is True
    assert pds.records == {} and pds.deleted == [previous["rkey"]]
    never = _unresolved(pds, transport, dest, made=False)
    assert Row(transport, dest, gone, event_type=UNPUBLISHED, previous=never).attempt().skipped == "no post to delete"


# --- lost answers and retries: never a second post ------------------------------------

def test_a_lost_create_answer_then_a_retry_makes_exactly_one_post(pds, images, transport, dest, caplog):
    caplog.set_level("DEBUG")
    pds.lose_answer(CREATE_RECORD)
    row = Row(transport, dest, article("putin", images.url))

    first = row.attempt()
    assert first.status_code is None and reading(first) == "retry"
    assert len(pds.records) == 1  # it was made; we never heard

    second = row.attempt()
    assert reading(second) == "delivered"
    assert len(pds.records) == 1 and len(pds.seen(CREATE_RECORD)) == 1
    rkey = row.saves[0]["rkey"]
    assert second.remote["rkey"] == rkey and second.remote["cid"] == pds.records[rkey]["cid"]
    assert pds.refused() == []
    assert_no_secrets(pds, row.outcomes, caplog)


def test_a_late_answer_after_the_timeout_then_a_retry_makes_exactly_one_post(pds, transport):
    dest = channel(pds, timeout=0.5)
    pds.slow(CREATE_RECORD, 1.5)
    row = Row(transport, dest, article("putin"))
    assert row.attempt().error_class == "timeout"
    assert reading(row.attempt()) == "delivered"
    pds.wait_for(lambda s: len(s.seen(CREATE_RECORD)) == 1, what="the slow create recorded")
    assert len(pds.records) == 1


def test_a_taken_key_answered_with_500_is_recognised_as_our_post(pds, transport, dest):
    """A stale read says the post is not there; createRecord then meets the taken key and
    the reference PDS answers 500: the transport looks again rather than fail or repost."""
    row = Row(transport, dest, article("putin"))
    pds.lose_answer(CREATE_RECORD)
    row.attempt()
    pds.fail(GET_RECORD, 400, {"error": "RecordNotFound", "message": "Could not locate record"})

    outcome = row.attempt()

    assert reading(outcome) == "delivered"
    assert [r.status for r in pds.seen(CREATE_RECORD)] == [0, 500]
    assert len(pds.records) == 1


def test_a_lost_blob_upload_answer_is_retried_and_posts_once(pds, images, transport, dest):
    pds.lose_answer(UPLOAD_BLOB)
    row = Row(transport, dest, article("putin", images.url))
    assert reading(row.attempt()) == "retry"
    assert pds.records == {}
    assert reading(row.attempt()) == "delivered"
    assert len(pds.records) == 1
    assert "thumb" in next(iter(pds.records.values()))["value"]["embed"]["external"]


def test_server_errors_are_retried_and_post_once(pds, transport, dest):
    pds.fail(CREATE_RECORD, 502, {"error": "UpstreamFailure", "message": "Upstream Failure"})
    row = Row(transport, dest, article("putin"))
    first = row.attempt()
    assert first.status_code == 502 and reading(first) == "retry"
    assert reading(row.attempt()) == "delivered"
    assert len(pds.records) == 1


def test_an_invalid_record_is_a_permanent_failure(pds, transport, dest):
    pds.fail(CREATE_RECORD, 400, {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record"})
    outcome = Row(transport, dest, article("putin")).attempt()
    assert outcome.status_code == 400 and reading(outcome) == "failed"
    assert "InvalidRequest" in outcome.error


def test_a_url_too_long_for_any_post_fails_without_a_request(pds, transport):
    dest = channel(pds, template="{url}")
    data = article("putin", url="https://london-news-net.example/" + "a" * 400)
    outcome = Row(transport, dest, data).attempt()
    assert reading(outcome) == "failed" and "300 graphemes" in outcome.error
    assert pds.requests == []


def test_an_empty_text_still_posts_the_link_card(pds, transport):
    dest = channel(pds, template="{summary}")
    outcome = Row(transport, dest, article("putin", summary="")).attempt()
    assert reading(outcome) == "delivered"
    (record,) = [r["value"] for r in pds.records.values()]
    assert record["text"] == "" and record["embed"]["external"]["uri"] == article("putin")["url"]


# --- rate limits and credentials -------------------------------------------------------

def test_429_honours_ratelimit_reset(pds, transport, dest):
    import time

    reset = int(time.time()) + 120
    pds.fail(CREATE_RECORD, 429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
             headers={"ratelimit-limit": "5000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset),
                      "ratelimit-policy": "5000;w=3600"})
    outcome = Row(transport, dest, article("putin")).attempt()
    assert outcome.status_code == 429 and reading(outcome) == "retry"
    assert 110 <= int(outcome.retry_after) <= 121


def test_a_rate_limited_sign_in_waits_and_does_not_disable(transport):
    with BlueskyServer(handle=HANDLE, session_budget=0) as pds:
        outcome = Row(transport, channel(pds), article("putin")).attempt()
    assert outcome.status_code == 429 and reading(outcome) == "retry" and not outcome.disable
    assert 1 <= int(outcome.retry_after) <= 301


def test_a_refused_app_password_disables_the_channel_and_is_never_shown(pds, transport, caplog):
    caplog.set_level("DEBUG")
    dest = channel(pds, app_password="wxyz-wxyz-wxyz-wxyz")
    row = Row(transport, dest, article("putin"))
    outcome = row.attempt()
    assert outcome.status_code == 401 and reading(outcome) == "disable"
    assert "app password" in outcome.disable and HANDLE in outcome.disable
    assert "wxyz-wxyz-wxyz-wxyz" not in repr(outcome)
    assert not any("wxyz-wxyz-wxyz-wxyz" in r.getMessage() for r in caplog.records)
    assert pds.records == {}


def test_the_documented_channel_entry_parses():
    from config import parse_config
    from tests.conftest import REPO

    doc = (REPO / "docs" / "channels" / "bluesky.md").read_text()
    entry = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    site = '[site]\ntitle = "LNN"\nurl = "https://lnn.example"\nfeeds_url = "https://lnn.example/feeds"\n'
    config = parse_config(site + entry, "doc.toml", {"BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop"})
    (dest,) = config.channels
    assert dest.type == "bluesky" and dest.handle == "news.example.com"
    assert dest.api_base == "https://bsky.social" and dest.template == "{title} {hashtags}"
    assert dest.secrets() == ["abcd-efgh-ijkl-mnop"] and "abcd" not in repr(dest)
