"""The hostile corpus end to end: `syndicate ingest` (a real process) with `syndicate run`
delivering to a stand-in partner that verifies signatures. The partner receives exactly
the accepted articles, each once, with nothing unsafe in them; the refused ones never
leave."""

from __future__ import annotations

import json

import pytest

from tests.hostile.corpus import ARTICLE_CASES, EXAMPLE, INGEST_ONLY, with_prefix
from worker.sanitize import has_unsafe_characters

CASES = [with_prefix(c, "web") for c in ARTICLE_CASES + INGEST_ONLY]


@pytest.fixture
def database_url(tmp_path) -> str:
    # One backend is enough here: the in-process corpus tests run on SQLite and PostgreSQL.
    return f"sqlite:///{tmp_path}/store.db"


def test_the_partner_receives_only_what_was_accepted_and_nothing_unsafe(running, partner, tmp_path):
    files = []
    for i, case in enumerate(CASES):
        path = tmp_path / f"{i:03d}-{case.name}.json"
        content = case.file_content("web")
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        files.append(str(path))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(dict(EXAMPLE, id="web:good-sibling")))
    files.append(str(good))

    result = running.syndicate("ingest", *files)

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    accepted = {f"web:{c.name}" for c in CASES if not c.refused} | {"web:good-sibling"}
    got = partner.wait_for(lambda got: len({r.key[0] for r in got if r.verified}) >= len(accepted), timeout=90)
    received = {r.key[0] for r in got if r.verified}
    assert received == accepted
    assert all(r.verified for r in got), [r.error for r in got if not r.verified]
    for r in got:
        data = r.message["data"]
        for key in ("title", "summary", "section"):
            value = data.get(key) or ""
            assert not has_unsafe_characters(value), (data["id"], key)
            assert "<script" not in value.lower() and "onerror=" not in value.lower(), (data["id"], key)
        assert "onerror" not in data["content_html"] and "javascript:" not in data["content_html"].lower()
        assert "hunter2" not in r.body.decode() and len(data["url"]) <= 2048
