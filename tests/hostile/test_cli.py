"""Bad command lines and hostile data at the console: every argument range-checked with a
clear message (exit 2), and data never read as console markup (`[/x]` prints as `[/x]`)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.hostile.corpus import EXAMPLE


def no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize("args, code, fragment", [
    (["rejected", "--limit", "-1"], 2, "Invalid value for '--limit'"),
    (["rejected", "--limit", "0"], 2, "Invalid value for '--limit'"),
    (["rejected", "--limit", "many"], 2, "'many' is not a valid integer"),
    (["deliveries", "--limit", "-1"], 2, "Invalid value for '--limit'"),
    (["deliveries", "--since", "100000000d"], 2, "3650d"),
    (["deliveries", "--since", "inf"], 2, "expected a duration"),
    (["deliveries", "--since", "-2h"], 2, "expected a duration"),
    (["replay", "--since", "99999999999999d", "--dry-run"], 2, "3650d"),
    (["ingest"], 2, "Missing argument 'FILES...'"),
    (["status", "[/x] not an id"], 1, "no article '[/x] not an id' in the store"),
    (["poll", "[/x]"], 2, "no source named '[/x]'"),
    (["feeds", "build", "[/bold]"], 2, "no feed named '[/bold]'"),
    (["status", "web:a\nforged line"], 1, "no article 'web:a\\nforged line'"),
])
def test_a_bad_argument_is_a_clear_error_without_a_traceback(cli, args, code, fragment):
    result = cli(*args)
    no_traceback(result)
    assert result.exit_code == code, result.output
    assert fragment in result.output + result.stderr, result.output + result.stderr


def test_ingest_of_a_directory_and_a_missing_file_names_each(cli, tmp_path):
    result = cli("ingest", str(tmp_path), str(tmp_path / "missing.json"))
    no_traceback(result)
    assert result.exit_code == 1
    assert f"rejected {tmp_path}: cannot read: is a directory" in result.stderr
    assert f"rejected {tmp_path / 'missing.json'}: cannot read: No such file or directory" in result.stderr


@pytest.mark.parametrize("make", [lambda tmp: tmp, lambda tmp: tmp / "nope.toml"])
def test_config_pointing_at_a_directory_or_nothing_is_one_clear_problem(tmp_path, make):
    from worker.cli import main
    from worker import runtime

    try:
        result = CliRunner().invoke(main, ["--config", str(make(tmp_path)), "check"])
    finally:
        runtime.reset()
    no_traceback(result)
    assert result.exit_code == 2
    assert "invalid configuration" in result.stderr
    assert ("is a directory" in result.stderr) or ("no such file" in result.stderr)


def test_console_markup_in_data_prints_literally_in_status_and_rejected(cli, tmp_path):
    path = tmp_path / "markup.json"
    path.write_text(json.dumps([dict(EXAMPLE, id="web:[/x]", title="[/x] closing [bold]tag[/bold]"),
                                dict(EXAMPLE, id="web:[/y]", title="", summary="[/z]")]))
    ingested = cli("ingest", str(path))
    no_traceback(ingested)
    assert ingested.exit_code == 1 and "web:[/x]: article.published" in ingested.stdout

    status = cli("status", "web:[/x]")
    no_traceback(status)
    assert status.exit_code == 0 and "[/x] closing [bold]tag[/bold]" in status.stdout

    refused = cli("status", "web:[/y]")
    no_traceback(refused)
    assert refused.exit_code == 0 and "(never stored)" in refused.stdout and "title: empty" in refused.stdout

    listed = cli("rejected")
    no_traceback(listed)
    assert listed.exit_code == 0 and "web:[/y]" in listed.stdout


def test_console_markup_in_partner_names_and_ids_prints_literally_in_partners_and_deliveries(
        store, redis_url, tmp_path):
    from tests.conftest import new_secret, write_config
    from worker import runtime
    from worker.cli import main

    config = write_config(tmp_path / "s.toml", partners=[{"name": "[/x]", "url": "http://127.0.0.1:9/",
                                                           "secret": new_secret(), "allow_private": True}])
    env = {"DATABASE_URL": store.url, "REDIS_URL": redis_url}
    article = tmp_path / "a.json"
    article.write_text(json.dumps(dict(EXAMPLE, id="web:[/y]")))
    results = []
    for args in (["ingest", str(article)], ["partners"], ["deliveries"]):
        runtime.reset()
        results.append(CliRunner().invoke(main, ["--config", str(config), *args], env=env))
    runtime.reset()
    for result in results:
        no_traceback(result)
        assert result.exit_code == 0, result.output
    assert "[/x]" in results[1].stdout and "web:[/y]" in results[2].stdout
