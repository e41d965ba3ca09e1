"""Building a feed claims its pending deliveries first, so no change is ever left behind."""

import pytest
from sqlalchemy import select

from tests.worker.feeds.conftest import store_articles
from tests.worker.feeds.test_index import story
from worker.feeds import build as build_module
from worker.feeds import rebuild, write_atomic
from worker.store import DeliveryRow


def feed_rows(store, name):
    with store.session() as s:
        return s.scalars(select(DeliveryRow).where(DeliveryRow.kind == "feed", DeliveryRow.destination == name)
                         .order_by(DeliveryRow.id)).all()


def test_a_build_marks_the_changes_it_read_delivered(store, config, tmp_path):
    store_articles(store, config, [story(1), story(2)])
    result = rebuild(store, config, tmp_path, "world")
    assert result.built and result.claimed == 2 and result.entries == 2
    assert sorted(result.changed) == ["world.atom", "world.json", "world.rss"]
    assert [(r.status, r.attempts) for r in feed_rows(store, "world")] == [("delivered", 1), ("delivered", 1)]


def test_without_pending_changes_a_build_is_skipped_unless_forced(store, config, tmp_path):
    store_articles(store, config, [story(1)])
    rebuild(store, config, tmp_path, "world")
    skipped = rebuild(store, config, tmp_path, "world")
    assert not skipped.built and skipped.files == {}
    forced = rebuild(store, config, tmp_path, "world", force=True)
    assert forced.built and forced.changed == []  # same articles, same bytes: nothing rewritten


def test_a_change_committed_after_the_claim_waits_for_the_next_build(store, config, tmp_path, monkeypatch):
    store_articles(store, config, [story(1)])
    real_feed_items = build_module.feed_items

    def change_arrives_mid_build(session, feed):
        # another process stores a story after this build claimed its rows
        store_articles(store, config, [story(2)])
        return real_feed_items(session, feed)

    monkeypatch.setattr(build_module, "feed_items", change_arrives_mid_build)
    rebuild(store, config, tmp_path, "world")
    monkeypatch.setattr(build_module, "feed_items", real_feed_items)
    rows = {r.article_id: r.status for r in feed_rows(store, "world")}
    assert rows == {"web:1": "delivered", "web:2": "pending"}

    # and the next build takes it
    assert rebuild(store, config, tmp_path, "world").claimed == 1
    assert {r.status for r in feed_rows(store, "world")} == {"delivered"}


def test_a_failed_build_puts_its_changes_back_to_pending(store, config, tmp_path):
    store_articles(store, config, [story(1)])
    not_a_directory = tmp_path / "feeds"
    not_a_directory.write_text("a file where the feeds directory should be")
    with pytest.raises(OSError):
        rebuild(store, config, not_a_directory, "world")
    [row] = feed_rows(store, "world")
    assert row.status == "pending" and row.lease_until is None
    assert "feed build failed" in row.last_error

    # and once the directory is writable the retry delivers it
    not_a_directory.unlink()
    assert rebuild(store, config, not_a_directory, "world").claimed == 1
    assert feed_rows(store, "world")[0].status == "delivered"


def test_changes_for_a_feed_no_longer_configured_fail_with_the_reason(store, config, tmp_path):
    store_articles(store, config, [story(1)])
    smaller = config.model_copy(update={"feeds": [f for f in config.feeds if f.name != "world"]})
    assert rebuild(store, smaller, tmp_path, "world") is None
    [row] = feed_rows(store, "world")
    assert row.status == "failed" and "no longer configured" in row.last_error


def test_files_are_replaced_atomically_and_only_when_their_bytes_change(tmp_path):
    path = tmp_path / "sub" / "all.rss"
    assert write_atomic(path, b"one") is True
    first_inode = path.stat().st_ino
    assert write_atomic(path, b"one") is False
    assert path.stat().st_ino == first_inode  # untouched
    assert write_atomic(path, b"two") is True
    assert path.read_bytes() == b"two" and path.stat().st_ino != first_inode  # a new file renamed over it
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["all.rss"]  # no temporary file left
