"""The drop-folder source: article JSON and IPTC ninjs 2.x files become articles and move
to done/; anything unreadable moves to failed/ with a .error note and a rejection row."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.worker.sources.helpers import events, poll, rejections, source_config
from worker.store import ArticleRow, utcnow

# A drop folder makes ids of its own source only ("drop:..."), see test_ids_belong_to_the_folder's_source.
EXAMPLE = dict(json.loads((REPO / "examples" / "article.json").read_text()), id="drop:world-putin-sharaa-kremlin")

NINJS = {
    "$schema": "http://www.iptc.org/std/ninjs/ninjs-schema_2.1.json",
    "uri": "https://news.example.com/2026/11/20/flood-defences",
    "type": "text",
    "version": "1",
    "firstcreated": "2026-11-20T08:00:00Z",
    "versioncreated": "2026-11-20T08:30:00+01:00",
    "pubstatus": "usable",
    "language": "en",
    "headlines": [{"role": "main", "value": "Flood defences hold as river peaks"},
                  {"role": "short", "value": "Defences hold"}],
    "descriptions": [{"role": "summary", "value": "The Thames barrier closed twice overnight."}],
    "bodies": [{"role": "main", "contenttype": "text/html", "value": "<p>The barrier closed at 2am.</p>"}],
    "people": [{"name": "Sam Writer", "rel": "author"}],
    "subjects": [{"name": "UK", "rel": "section"}, {"name": "Weather"}, {"name": "Thames"}],
    "associations": [{"name": "featureimage", "uri": "urn:img:1", "type": "picture",
                      "descriptions": [{"role": "alt", "value": "The barrier at dawn"}],
                      "renditions": [{"name": "thumb", "href": "https://img.example/t.jpg", "width": 200},
                                     {"name": "large", "href": "https://img.example/l.jpg", "width": 1600,
                                      "height": 900}]}],
}


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "incoming"
    path.mkdir()
    return path


def drop(folder: Path, name: str, content, *, age: float = 10.0) -> Path:
    """A file as a finished copy leaves it: written, then untouched for `age` seconds."""
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def dir_config(folder: Path):
    return source_config(name="drop", type="directory", path=str(folder), interval="1s")


def stored(store) -> dict[str, ArticleRow]:
    from sqlalchemy import select

    with store.session() as s:
        return {a.id: a for a in s.scalars(select(ArticleRow))}


def test_an_article_file_is_stored_and_moved_to_done(folder, store, redis_client):
    drop(folder, "story.json", EXAMPLE)
    result = poll(dir_config(folder), store, redis_client)
    assert result.published == 1
    assert not (folder / "story.json").exists() and (folder / "done" / "story.json").exists()
    assert stored(store)[EXAMPLE["id"]].title == EXAMPLE["title"]
    # a poll with nothing new finds nothing
    assert poll(dir_config(folder), store, redis_client).published == 0


def test_a_ninjs_2_document_becomes_an_article(folder, store, redis_client):
    drop(folder, "flood.json", NINJS)
    poll(dir_config(folder), store, redis_client)
    art = stored(store)["drop:https://news.example.com/2026/11/20/flood-defences"]
    assert art.title == "Flood defences hold as river peaks"
    assert art.summary == "The Thames barrier closed twice overnight."
    assert art.content_html == "<p>The barrier closed at 2am.</p>"
    assert art.authors == ["Sam Writer"] and art.section == "UK" and art.tags == ["Weather", "Thames"]
    assert art.image == {"url": "https://img.example/l.jpg", "alt": "The barrier at dawn", "width": 1600,
                         "height": 900}
    assert art.url == NINJS["uri"] and art.language == "en"
    assert art.published_at.isoformat() == "2026-11-20T08:00:00+00:00"
    assert (folder / "done" / "flood.json").exists()


def test_a_correction_and_a_cancellation_dropped_later_are_an_update_and_an_unpublish(folder, store, redis_client):
    config = dir_config(folder)
    drop(folder, "a.json", NINJS, age=30)
    poll(config, store, redis_client)
    drop(folder, "a.json", dict(NINJS, headlines=[{"value": "Flood defences hold as river peaks at 7m"}]), age=20)
    drop(folder, "a-again.json", dict(NINJS, headlines=[{"value": "Flood defences hold as river peaks at 7m"}]),
         age=15)
    poll(config, store, redis_client)
    drop(folder, "a-kill.json", dict(NINJS, pubstatus="canceled"))
    poll(config, store, redis_client)
    article_id = "drop:" + NINJS["uri"]
    assert [e for _, e in events(store, article_id)] == ["article.published", "article.updated",
                                                         "article.unpublished"]
    # the second file of the same name did not overwrite the first in done/
    assert len(list((folder / "done").glob("a*.json"))) == 4


@pytest.mark.parametrize("name, content, fragment", [
    ("broken.json", '{"id": "web:x", "title": ', "not valid JSON: Expecting value at line 1 column 26"),
    ("latin1.json", "{\"id\": \"web:caf\u00e9\"}".encode("latin-1"), "not UTF-8 text"),
    ("empty.json", "[]", "the file holds an empty list"),
    ("old-ninjs.json", {"uri": "urn:x:1", "headline": "Old style", "body_html": "<p>x</p>"}, "ninjs 1.x"),
    ("no-headline.json", dict(NINJS, headlines=[]), "headlines is missing or empty"),
    ("no-url.json", dict(NINJS, uri="urn:newsml:example.com:20261120:flood"), "no web address"),
    ("naive-date.json", dict(NINJS, firstcreated="2026-11-20T08:00:00"), "firstcreated has no UTC offset"),
    ("future.json", dict(EXAMPLE, published_at="9999-12-31T23:59:59Z"), "published_at: 9999-12-31T23:59:59Z is in"),
    ("overflow.json", dict(EXAMPLE, published_at="9999-12-31T23:59:59-05:00"), "cannot be converted to UTC"),
    ("deep.json", "[" * 10_000 + "]" * 10_000, "nested too deeply"),
    ("digits.json", '{"id": "drop:n", "url": "https://x.example/", "published_at": "2026-11-26T09:00:00Z", '
                    '"title": ' + "9" * 5000 + "}", "title: Input should be a valid string"),
    ("host-space.json", dict(EXAMPLE, url="https://news example/a"), "url: host 'news example' is not a valid"),
    ("other-source.json", dict(EXAMPLE, id="wp:102", status="unpublished"), "belongs to source 'wp'"),
    ("huge.json", dict(EXAMPLE, content_html="<p>" + "x" * 5_000_000 + "</p>"), "the limit is 2,000,000"),
    ("bad-field.json", dict(EXAMPLE, published_at="26/11/2026"), "published_at"),
])
def test_a_bad_file_moves_to_failed_with_a_note_and_a_rejection(name, content, fragment, folder, store,
                                                                 redis_client, caplog):
    drop(folder, name, content)
    drop(folder, "good.json", EXAMPLE)
    result = poll(dir_config(folder), store, redis_client)

    assert result.status == "ok" and result.rejected == 1 and result.published == 1
    assert (folder / "failed" / name).exists() and not (folder / name).exists()
    note = (folder / "failed" / f"{name}.error").read_text()
    assert fragment in note, note
    [row] = rejections(store)
    assert row.source == "drop" and fragment in row.reason and str(folder / name) in row.where
    assert f"source=drop upstream_id={row.upstream_id} rejected:" in caplog.text
    assert (folder / "done" / "good.json").exists()


def test_a_file_with_one_bad_item_stores_the_others_and_names_the_bad_one(folder, store, redis_client):
    items = [EXAMPLE, dict(EXAMPLE, id="drop:second", title=""), dict(EXAMPLE, id="drop:third")]
    drop(folder, "batch.json", items)
    result = poll(dir_config(folder), store, redis_client)
    assert result.published == 2 and result.rejected == 1
    assert set(stored(store)) == {EXAMPLE["id"], "drop:third"}
    note = (folder / "failed" / "batch.json.error").read_text()
    assert "batch.json[1]: title: empty after cleaning" in note
    assert rejections(store)[0].article_id == "drop:second"


def test_a_file_still_being_written_is_left_until_it_settles(folder, store, redis_client):
    path = drop(folder, "copying.json", EXAMPLE, age=0)
    assert poll(dir_config(folder), store, redis_client).published == 0
    assert path.exists()
    stamp = time.time() - 10
    os.utime(path, (stamp, stamp))
    assert poll(dir_config(folder), store, redis_client).published == 1


def test_an_embargoed_ninjs_document_waits_in_the_folder_until_its_time(folder, store, redis_client):
    # the poll takes its clock (`now`): an embargo an hour away, polled before and after it
    from worker.watch import poll_source

    until = utcnow() + timedelta(hours=1)
    path = drop(folder, "embargo.json", dict(NINJS, embargoed=until.isoformat()))
    config = dir_config(folder)
    before = poll_source("drop", config=config, store=store, redis_client=redis_client,
                         now=until - timedelta(seconds=1))
    assert before.published == 0
    assert path.exists() and events(store) == []
    after = poll_source("drop", config=config, store=store, redis_client=redis_client,
                        now=until + timedelta(seconds=1))
    assert after.published == 1
    assert (folder / "done" / "embargo.json").exists()


def test_a_file_stored_but_not_moved_before_a_crash_makes_no_second_event(folder, store, redis_client):
    drop(folder, "story.json", EXAMPLE)
    poll(dir_config(folder), store, redis_client)
    # as if the process died after the commit, before the move
    os.replace(folder / "done" / "story.json", folder / "story.json")
    stamp = time.time() - 10
    os.utime(folder / "story.json", (stamp, stamp))
    result = poll(dir_config(folder), store, redis_client)
    assert result.published == 0 and result.unchanged == 1
    assert events(store) == [(EXAMPLE["id"], "article.published")]


def test_a_missing_folder_is_created_and_polled(tmp_path, store, redis_client):
    result = poll(dir_config(tmp_path / "var" / "incoming"), store, redis_client)
    assert result.status != "failed", result.error
    assert (tmp_path / "var" / "incoming").is_dir()


def test_a_folder_that_cannot_be_created_fails_the_poll(tmp_path, store, redis_client):
    (tmp_path / "a-file").write_text("")
    result = poll(dir_config(tmp_path / "a-file" / "incoming"), store, redis_client)
    assert result.status == "failed" and "cannot be created" in result.error


def test_markup_and_control_characters_are_cleaned_and_the_story_goes_out(folder, store, redis_client, caplog):
    # before: "title contains control character" / "hostile HTML", the file went to failed/
    drop(folder, "story.json", dict(EXAMPLE, title="Breaking\u0007 <b>news</b>",
                                    content_html='<p>x</p><svg><a href="javascript:alert(1)">y</a></svg>'))
    with caplog.at_level("INFO"):
        result = poll(dir_config(folder), store, redis_client)
    assert result.published == 1 and result.rejected == 0
    assert (folder / "done" / "story.json").exists()
    art = stored(store)[EXAMPLE["id"]]
    assert art.title == "Breaking news" and "javascript" not in art.content_html and "<p>x</p>" in art.content_html
    assert caplog.text.count("cleaned on the way in") == 1
    assert "title: removed control characters" in caplog.text and "content_html: removed <svg>" in caplog.text


def test_ids_belong_to_the_folders_source(folder, store, redis_client):
    # a bare id gets the folder's source; another source's id is refused and touches nothing
    with store.session() as s:
        from worker.articles import parse_article
        from worker.pipeline import record_article

        record_article(s, parse_article(dict(EXAMPLE, id="wp:102"), "t"), dir_config(folder))
    drop(folder, "bare.json", dict(EXAMPLE, id="story-1"), age=20)
    drop(folder, "kill.json", dict(EXAMPLE, id="wp:102", status="unpublished"), age=10)
    result = poll(dir_config(folder), store, redis_client)
    assert result.published == 1 and result.rejected == 1 and result.unpublished == 0
    assert stored(store)["wp:102"].status == "published" and "drop:story-1" in stored(store)
    assert "belongs to source 'wp'" in (folder / "failed" / "kill.json.error").read_text()


def test_a_file_that_fails_in_an_unforeseen_way_is_filed_away_and_newer_files_are_read(
        folder, store, redis_client, monkeypatch):
    from worker.sources.directory import DirectorySource

    def explode(self, path, context):
        if path.name == "first.json":
            raise RuntimeError("a bug nobody foresaw")
        return original(self, path, context)

    original = DirectorySource.read_file
    monkeypatch.setattr(DirectorySource, "read_file", explode)
    drop(folder, "first.json", EXAMPLE, age=20)
    drop(folder, "second.json", dict(EXAMPLE, id="drop:2"), age=10)
    result = poll(dir_config(folder), store, redis_client)
    assert result.status == "ok" and result.published == 1 and result.rejected == 1
    assert "RuntimeError: a bug nobody foresaw" in (folder / "failed" / "first.json.error").read_text()
    assert (folder / "done" / "second.json").exists()
