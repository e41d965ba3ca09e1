"""tasks.watch (poll_due hands each due source out once; poll_source polls it, or drops a
source no longer configured) and tasks.republish (by id, by --since, to chosen partners)."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from tests.conftest import REPO
from tests.tasks.conftest import queued
from tests.worker.delivery.conftest import article, rows, store_article

EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())


@pytest.fixture
def inbox(task_env, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    config = task_env(extra=f'[[sources]]\nname = "inbox"\ntype = "directory"\npath = "{folder}"\n'
                            f'interval = "1m"\n')
    return folder, config


def test_poll_due_enqueues_each_due_source_once(inbox, redis_client):
    from tasks.watch import poll_due

    redis_client.delete("watch")
    assert poll_due() == ["inbox"]
    assert poll_due() == []  # leased while its poll waits
    assert [(m["task"], m["args"]) for m in queued(redis_client, "watch")] == [("tasks.watch.poll_source", ["inbox"])]


def test_poll_source_polls_the_source(inbox, store):
    from tasks.watch import poll_source

    folder, _ = inbox
    path = folder / "story.json"
    path.write_text(json.dumps(dict(EXAMPLE, id="inbox:story")))
    stamp = time.time() - 10  # a finished copy, not one still being written
    os.utime(path, (stamp, stamp))
    result = poll_source("inbox")
    assert result["status"] == "ok" and result["published"] == 1
    assert (folder / "done" / "story.json").exists()


def test_a_poll_of_a_source_no_longer_configured_is_dropped(inbox, caplog):
    from tasks.watch import poll_source

    with caplog.at_level(logging.WARNING, "syndicate.watch"):
        assert poll_source("removed") == {"source": "removed", "status": "unknown"}
    assert "source=removed is no longer in the configuration; poll dropped" in caplog.text


@pytest.fixture
def two_partners(task_env, partner):
    return task_env(partners=[{"name": name, "url": partner.url, "secret": partner.secret, "allow_private": True}
                              for name in ("acme", "other")])


def test_republish_by_id_makes_new_deliveries_and_enqueues_them(two_partners, store, redis_client):
    from tasks.republish import republish

    first = store_article(store, two_partners, article(1))
    redis_client.delete("deliver")
    assert republish(article_id="web:story-1") == {"articles": 1, "deliveries": 2}
    sent = sorted(i for m in queued(redis_client, "deliver") for i in m["args"][0])
    assert len(sent) == 2 and not set(sent) & set(first)
    new = {r.destination: r for r in rows(store, *sent)}
    old = {r.destination: r for r in rows(store, *first)}
    assert all(new[d].message_id != old[d].message_id for d in ("acme", "other"))


def test_republish_to_one_partner_and_since(two_partners, store, redis_client):
    from tasks.republish import republish

    store_article(store, two_partners, article(1))
    store_article(store, two_partners, article(2))
    redis_client.delete("deliver")
    assert republish(since="1h", to=["other"]) == {"articles": 2, "deliveries": 2}
    sent = [i for m in queued(redis_client, "deliver") for i in m["args"][0]]
    assert {r.destination for r in rows(store, *sent)} == {"other"}


def test_republish_needs_an_article_or_a_period(two_partners):
    from tasks.republish import republish

    with pytest.raises(ValueError, match="give article_id or since"):
        republish()
    with pytest.raises(LookupError):
        republish(article_id="web:nope")
