"""The Bluesky channel through the real delivery engine and store (SQLite and PostgreSQL):
a story's life (post, lost answer and retry, edit, unpublish) leaves one post, then none."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from config import parse_config
from tests.support.bluesky_server import CREATE_RECORD, CREATE_SESSION, BlueskyServer, ImageServer
from tests.worker.transports.bluesky_helpers import HANDLE, PASSWORD, raw_article
from worker.articles import parse_article
from worker.delivery import DeliveryEngine, DeliveryPolicy
from worker.pipeline import record_article
from worker.store import DeliveryRow, utcnow
from worker.store.models import DestinationStateRow


@pytest.fixture
def pds():
    server = BlueskyServer(handle=HANDLE).start()
    yield server
    server.stop()


@pytest.fixture
def images():
    server = ImageServer().start()
    yield server
    server.stop()


@pytest.fixture
def config(pds):
    text = f'''
[site]
title = "LNN"
url = "https://lnn.example"
feeds_url = "https://lnn.example/feeds"

[[channels]]
name = "bsky"
type = "bluesky"
handle = "{HANDLE}"
app_password = "${{BLUESKY_APP_PASSWORD}}"
base_url = "{pds.url}"
allow_private = true
timeout = "2s"
retry_schedule = ["1s", "1s", "1s"]
'''
    return parse_config(text, "test.toml", {"BLUESKY_APP_PASSWORD": PASSWORD})


@pytest.fixture
def engine(store, config, redis_client):
    e = DeliveryEngine(store, config, redis_client=redis_client, policy=DeliveryPolicy(rng=random.Random(1)))
    yield e
    e.pool.shutdown(wait=True)
    e.transports.close()


def _story(images, **changes) -> dict:
    data = raw_article("putin", images.url, id="web:putin", **changes)
    data.pop("version", None)
    data["summary"] = "President Putin met Syria's Ahmed al-Sharaa at the Kremlin on Wednesday."
    data.pop("content_html", None)
    return data


def _record(store, config, data) -> list[int]:
    with store.session() as s:
        return record_article(s, parse_article(data, "t"), config).channel_deliveries


def _row(store, delivery_id) -> DeliveryRow:
    with store.session() as s:
        return s.scalars(select(DeliveryRow).where(DeliveryRow.id == delivery_id)).one()


def _make_due(store, delivery_id) -> None:
    from datetime import timedelta

    with store.session() as s:
        r = s.get(DeliveryRow, delivery_id)
        r.next_attempt_at = utcnow() - timedelta(seconds=1)


def test_a_story_posted_through_a_lost_answer_edited_and_withdrawn(store, config, engine, pds, images):
    (first,) = _record(store, config, _story(images))
    pds.lose_answer(CREATE_RECORD)

    engine.run([first])
    row = _row(store, first)
    assert row.status == "pending" and row.remote["rkey"]  # the key was saved before the lost write
    assert len(pds.records) == 1

    _make_due(store, first)
    engine.run([first])
    row = _row(store, first)
    assert row.status == "delivered", row.last_error
    rkey = row.remote["rkey"]
    assert list(pds.records) == [rkey] and row.remote["id"] == pds.post_uri(rkey)
    assert row.remote["url"] == f"https://bsky.app/profile/{HANDLE}/post/{rkey}"

    (edit,) = _record(store, config, _story(images, title="Putin and Sharaa Agree on Bases",
                                            updated_at="2026-11-26T10:00:00Z"))
    engine.run([edit])
    edited = _row(store, edit)
    assert edited.status == "skipped" and edited.remote["id"] == row.remote["id"]
    assert list(pds.records) == [rkey] and pds.records[rkey]["value"]["text"].startswith("Putin Strengthens")

    (gone,) = _record(store, config, _story(images, status="unpublished", updated_at="2026-11-26T11:00:00Z"))
    engine.run([gone])
    assert _row(store, gone).status == "delivered", _row(store, gone).last_error
    assert pds.records == {} and pds.deleted == [rkey]
    assert len(pds.seen(CREATE_SESSION)) == 1 and pds.refused() == []
    for r in (row, edited, _row(store, gone)):
        assert PASSWORD not in repr(r.remote) + str(r.last_error)
        assert not any(token in repr(r.remote) + str(r.last_error) for token in pds.tokens())


def test_a_refused_app_password_disables_the_channel_and_the_story_waits(store, config, engine, pds, images):
    pds.password = "another-pass-word-0000"
    (first,) = _record(store, config, _story(images))
    engine.run([first])
    row = _row(store, first)
    assert row.status == "pending" and pds.records == {}
    with store.session() as s:
        state = s.get(DestinationStateRow, ("channel", "bsky"))
        assert state.disabled and "app password" in state.disabled_reason
    for text in (str(row.last_error), state.disabled_reason):
        assert PASSWORD not in text and "another-pass-word-0000" not in text
