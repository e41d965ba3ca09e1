"""The CLI starts fast because listing commands imports nothing heavy and `status` imports
only the store and Rich; its summaries stay in step with the commands; piped output is not
folded at 80 columns."""

import importlib
import json
import os
import subprocess
import sys

from tests.conftest import BIN, migrated_copy, write_config
from worker.cli import COMMANDS, main

HEAVY = ("celery", "sqlalchemy", "rich", "pydantic", "redis", "kombu", "alembic", "requests", "lxml")
# What `status ID` reads without: the settings models, the broker, the sanitizer, Sentry's SDK.
NOT_FOR_STATUS = ("celery", "pydantic", "redis", "kombu", "alembic", "requests", "lxml", "nh3", "sentry_sdk")


def _new_modules(code: str, env: dict | None = None) -> list[str]:
    """Modules `code` imports beyond what `import worker` already did (the package's own
    import is the engine's business; this is about what the CLI adds)."""
    probe = ("import sys, json; import worker; before = set(sys.modules); " + code
             + "; print(json.dumps(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_listing_the_commands_imports_no_heavy_library():
    code = ("from click.testing import CliRunner; from worker.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output")
    heavy = [m for m in _new_modules(code) if m.split(".")[0] in HEAVY]
    assert heavy == []


def _store_with_one_article(sqlite_url, request, tmp_path) -> tuple[str, dict]:
    """A migrated SQLite store holding the example article for partner `acme`; its id, and
    the environment of a `syndicate` process that reads it (no Sentry, no broker)."""
    from config import load_config
    from tests.hostile.corpus import EXAMPLE
    from worker.articles import parse_article
    from worker.pipeline import record_articles
    from worker.store import Store

    config = write_config(tmp_path / "s.toml", partners=[{"name": "acme", "url": "https://acme.example/hook",
                                                           "secret": "whsec_QUJDREVGR0hJSktMTU5PUA=="}])
    migrated_copy(sqlite_url, request)
    store = Store(sqlite_url)
    with store.session() as s:
        record_articles(s, [parse_article(EXAMPLE, "test")], load_config(config))
    store.dispose()
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    env.update(DATABASE_URL=sqlite_url, SYNDICATE_CONFIG=str(config), REDIS_URL="redis://127.0.0.1:1/0")
    return EXAMPLE["id"], env


def test_status_of_an_article_imports_no_settings_model_broker_or_sanitizer(sqlite_url, request, tmp_path):
    article_id, env = _store_with_one_article(sqlite_url, request, tmp_path)
    code = ("from click.testing import CliRunner; from worker.cli import main; "
            f"r = CliRunner().invoke(main, ['status', {article_id!r}]); "
            "assert r.exit_code == 0 and 'partner:acme' in r.output and 'pending' in r.output, r.output")
    loaded = {m.split(".")[0] for m in _new_modules(code, env)}
    assert sorted(loaded & set(NOT_FOR_STATUS)) == []
    assert {"sqlalchemy", "rich"} <= loaded


def test_status_with_sentry_on_loads_neither_celery_nor_the_settings_models(sqlite_url, request, tmp_path):
    # Production sets SENTRY_DSN: a command that runs no task gets the light Sentry setup
    # (no Celery integration, none auto-enabled) and still loads no configuration for it.
    article_id, env = _store_with_one_article(sqlite_url, request, tmp_path)
    env.update(SENTRY_DSN="http://public@127.0.0.1:9/1", SENTRY_TRACES_SAMPLE_RATE="0")
    code = ("from click.testing import CliRunner; from worker.cli import main; "
            "from worker.observability import sentry_enabled; "
            f"r = CliRunner().invoke(main, ['status', {article_id!r}]); "
            "assert r.exit_code == 0 and 'partner:acme' in r.output, r.output; assert sentry_enabled()")
    loaded = {m.split(".")[0] for m in _new_modules(code, env)}
    assert "sentry_sdk" in loaded
    assert sorted(loaded & {"celery", "kombu", "pydantic", "redis", "lxml", "nh3"}) == []


def test_a_command_closes_the_store_before_the_process_ends(sqlite_url, request, tmp_path):
    # The process skips Python's last garbage collections (worker.cli._end_of_process) but
    # still closes its connections: SQLite checkpoints its write-ahead log and removes it.
    article_id, env = _store_with_one_article(sqlite_url, request, tmp_path)
    path = sqlite_url.split("///", 1)[1]
    result = subprocess.run([str(BIN / "syndicate"), "status", article_id], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "partner:acme" in result.stdout, result.stderr
    assert not os.path.exists(path + "-wal") and not os.path.exists(path + "-shm")


def test_storing_articles_loads_neither_the_delivery_engine_nor_the_feed_renderers_nor_celery():
    # `syndicate ingest` imports the pipeline at start; Celery and the task modules only
    # come with the first enqueue (through worker.enqueue, which `tasks` implements).
    loaded = _new_modules("import worker.pipeline, worker.watch, worker.cli.articles")
    unwanted = ("worker.delivery.engine", "worker.transports", "worker.feeds.build", "worker.feeds.render",
                "worker.celery", "celery", "tasks.deliver", "tasks.feeds")
    assert sorted(m for m in loaded if m in unwanted) == []


def test_every_command_is_in_the_table_with_its_own_summary():
    for module in sorted({m for m, _ in COMMANDS.values()}):
        importlib.import_module(module)
    registered = set(main.commands) - {"check", "migrate"}
    assert registered == set(COMMANDS), "add new commands to worker.cli.COMMANDS (module, summary)"
    for name, (module, summary) in COMMANDS.items():
        command = main.commands[name]
        assert command.callback.__module__ == module, name
        assert command.get_short_help_str(limit=1000) == summary, f"summary of {name!r} differs from its docstring"


def test_version_and_help_from_the_installed_command():
    version = subprocess.run([str(BIN / "syndicate"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("syndicate, version ")
    listing = subprocess.run([str(BIN / "syndicate"), "--help"], capture_output=True, text=True, check=True)
    assert "health" in listing.stdout and "reload" in listing.stdout


def test_piped_output_is_not_folded_inside_a_sentence(tmp_path):
    # stdout is a pipe here: a long message comes out on one line.
    config = tmp_path / "missing.toml"
    result = subprocess.run([str(BIN / "syndicate"), "--config", str(config) + "x" * 60, "check"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("invalid configuration") and "problem(s)" in first


def test_a_piped_console_is_wide_and_does_not_wrap(monkeypatch):
    from worker.cli.common import PIPE_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    assert console.width == PIPE_WIDTH and console.soft_wrap
