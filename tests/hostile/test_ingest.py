"""The hostile corpus through `syndicate ingest`: every input cleaned or refused with one
clear line, recorded under source `ingest`, valid siblings stored, feeds valid, and only
accepted, clean articles in what partners are sent."""

from __future__ import annotations

import json

from tests.hostile.conftest import (
    assert_feeds_valid,
    assert_nothing_unsafe_stored_or_sent,
    event_data,
    rejection_rows,
    stored,
)
from tests.hostile.corpus import ARTICLE_CASES, EXAMPLE, INGEST_ONLY, with_prefix

CASES = [with_prefix(c, "web") for c in ARTICLE_CASES + INGEST_ONLY]


def test_every_hostile_input_is_cleaned_or_refused_and_valid_siblings_go_through(cli, store, tmp_path):
    files = []
    for i, case in enumerate(CASES):
        path = tmp_path / f"{i:03d}-{case.name}.json"
        content = case.file_content("web")
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        files.append((case, path))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(dict(EXAMPLE, id="web:good-sibling")))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([dict(EXAMPLE, id="web:mixed-1"), dict(EXAMPLE, id="web:mixed-bad", title=""),
                                 dict(EXAMPLE, id="web:mixed-3")]))

    result = cli("ingest", *[str(p) for _, p in files], str(good), str(mixed), "/nonexistent/file.json",
                 str(tmp_path))

    # no traceback, exit 1, one line per refused input naming file and field
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.splitlines()
    refused = [(c, p) for c, p in files if c.refused]
    for case, path in refused:
        mine = [line for line in lines if line.startswith(f"rejected {path}")]
        assert len(mine) == 1, (case.name, mine)
        assert case.refused in mine[0], (case.name, mine[0])
    assert any(line.startswith(f"rejected {tmp_path / 'mixed.json'}[1]: title: empty") for line in lines)
    assert any("/nonexistent/file.json: cannot read" in line for line in lines)
    assert any(line.startswith(f"rejected {tmp_path}: cannot read: is a directory") for line in lines)

    # every accepted case is stored, clean; no refused one is
    rows = stored(store)
    for case, _ in files:
        article_id = f"web:{case.name}"
        if case.refused:
            assert article_id not in rows, case.name
        else:
            row = next((r for aid, r in rows.items() if aid == article_id), None)
            assert row is not None, (case.name, result.stderr[-2000:])
            assert case.check is None or case.check(row), (case.name, row.title[:80], row.authors, row.image)
    assert {"web:good-sibling", "web:mixed-1", "web:mixed-3"} <= set(rows)
    assert_nothing_unsafe_stored_or_sent(store)

    # the rejections are in `syndicate rejected --source ingest`
    recorded = rejection_rows(store, "ingest")
    assert len(recorded) == len(refused) + 3
    listed = cli("rejected", "--source", "ingest", "--limit", "1000", "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == len(recorded)
    table = cli("rejected", "--source", "ingest", "--limit", "1000")
    assert table.exit_code == 0 and table.exception is None and "ingest" in table.stdout

    # partners are sent exactly the accepted articles
    sent = event_data(store)
    assert set(sent) == set(rows)
    assert all(data["title"] == rows[aid].title for aid, data in sent.items())

    # and every feed stays valid, with no year-9999 story on top
    documents = assert_feeds_valid(store, tmp_path / "syndication.toml", tmp_path / "feeds")
    newest = documents["json"]["items"][0]
    assert not newest["date_published"].startswith("9999")


def test_the_same_id_twice_in_one_batch_makes_one_published_event_with_the_last_version(cli, store, tmp_path):
    first = tmp_path / "first.json"
    first.write_text(json.dumps(dict(EXAMPLE, id="web:twice", title="First take")))
    second = tmp_path / "second.json"
    second.write_text(json.dumps(dict(EXAMPLE, id="web:twice", title="Second take")))

    result = cli("ingest", str(first), str(second))

    assert result.exit_code == 0, result.output
    assert "web:twice: given more than once; only its last version is stored" in result.stderr
    from sqlalchemy import select

    from worker.store import EventRow

    with store.session() as s:
        events = [(e.type, e.data["title"]) for e in s.scalars(select(EventRow).where(EventRow.article_id == "web:twice"))]
    assert events == [("article.published", "Second take")]


def test_ingest_says_what_it_cleaned(cli, store, tmp_path):
    path = tmp_path / "story.json"
    path.write_text(json.dumps(dict(EXAMPLE, id="web:cleaned", content_html='<p>x</p><img src=a onerror=alert(1)>')))
    result = cli("ingest", str(path))
    assert result.exit_code == 0
    assert "web:cleaned: article.published" in result.stdout
    assert "cleaned: content_html: removed <img onerror>" in result.stdout
