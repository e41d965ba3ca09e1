"""The hostile corpus through the drop-folder source: one poll reads every file; each bad
one moves to failed/ with its note and a rejection, every other one is stored, the poll
is not a failure, and feeds stay valid."""

from __future__ import annotations

import json
import os
import time

from tests.hostile.conftest import assert_feeds_valid, assert_nothing_unsafe_stored_or_sent, rejection_rows, stored
from tests.hostile.corpus import ARTICLE_CASES, DIRECTORY_ONLY, EXAMPLE, with_prefix
from tests.worker.sources.helpers import poll

CASES = [with_prefix(c, "drop") for c in ARTICLE_CASES + DIRECTORY_ONLY]


def test_every_hostile_file_is_filed_away_and_the_folder_goes_on(tmp_path, store, redis_client):
    from config import load_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    config_path = tmp_path / "syndication.toml"
    from tests.conftest import write_config

    write_config(config_path, feeds=[{"name": "all", "title": "All stories", "limit": 1000}],
                 extra=f'[[sources]]\nname = "drop"\ntype = "directory"\npath = "{folder}"\n')
    config = load_config(config_path, env={})
    stamp = time.time() - 60
    names = {}
    for i, case in enumerate(CASES):
        # the bad ones first (oldest): newer files must still be read
        path = folder / f"{i:03d}-{case.name}.json"
        content = case.file_content("drop")
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        os.utime(path, (stamp + i * 0.01, stamp + i * 0.01))
        names[case.name] = path.name
    newest = folder / "zzz-newest.json"
    newest.write_text(json.dumps(dict(EXAMPLE, id="drop:newest")))
    os.utime(newest, (stamp + 30, stamp + 30))

    result = poll(config, store, redis_client)

    refused = [c for c in CASES if c.refused]
    assert result.status == "ok" and result.consecutive_failures == 0, result.error
    assert result.rejected == len(refused)
    rows = stored(store)
    for case in CASES:
        name = names[case.name]
        if case.refused:
            assert (folder / "failed" / name).exists(), case.name
            note = (folder / "failed" / f"{name}.error").read_text()
            assert case.refused in note, (case.name, note)
        else:
            assert (folder / "done" / name).exists(), case.name
            row = next((r for aid, r in rows.items() if aid.endswith(":" + case.name.removeprefix("X:"))
                        or aid == f"drop:{case.name}"), None)
            assert row is not None, case.name
            assert case.check is None or case.check(row), (case.name, row.title[:80])
    assert "drop:newest" in rows and (folder / "done" / "zzz-newest.json").exists()
    assert not [p for p in folder.iterdir() if p.is_file()], "every file was filed away"
    assert all(aid.startswith("drop:") for aid in rows)
    reasons = {r.upstream_id: r for r in rejection_rows(store, "drop")}
    assert len(reasons) == len(refused)
    assert all("\n" not in (r.upstream_id or "") + r.reason + r.where for r in reasons.values())
    assert_nothing_unsafe_stored_or_sent(store)
    assert_feeds_valid(store, config_path, tmp_path / "feeds")

    # the next poll finds nothing new and records nothing twice
    again = poll(config, store, redis_client)
    assert again.status == "ok" and again.published == 0 and len(rejection_rows(store, "drop")) == len(refused)
