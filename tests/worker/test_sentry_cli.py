"""Every CLI command reports an unexpected crash to Sentry (one line to the user, exit 1, the
exception with its stack in Sentry, no secret), and `sentry-test` says whether the DSN
accepted its event."""

import socket

import click
import pytest
from click.testing import CliRunner

from tests.conftest import new_secret
from tests.support.sentry_server import SentryServer
from tests.worker.test_observability_redaction import BEARER, BOT_TOKEN, config_text
from worker import runtime
from worker.cli import main
from worker.observability.sentry import shutdown


def commands(group: click.Group, path=()):
    """Every command and group under `group`, with the arguments it requires."""
    ctx = click.Context(group)
    # The `syndicate` group imports its commands when asked for them (worker.cli.COMMANDS).
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        args = [*path, name]
        required = [p for p in cmd.params if isinstance(p, click.Argument) and p.required]
        if not isinstance(cmd, click.Group):
            yield args + ["x"] * len(required), cmd
        else:
            if cmd.invoke_without_command:
                yield args, cmd
            yield from commands(cmd, args)


@pytest.fixture
def sentry(tmp_path, monkeypatch):
    server = SentryServer().start()
    secret = new_secret()
    config = tmp_path / "syndication.toml"
    config.write_text(config_text(secret))
    monkeypatch.setenv("SYNDICATE_CONFIG", str(config))
    monkeypatch.setenv("SENTRY_DSN", server.dsn)
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "cli-test")
    monkeypatch.delenv("SYNDICATE_TRACEBACK", raising=False)
    runtime.reset()
    server.secret = secret
    yield server
    shutdown()
    runtime.reset()
    server.stop()


def test_every_command_reports_an_unexpected_crash(sentry):
    def crash(*args, **kwargs):
        config = runtime.config()
        headers = config.partners[0].headers  # noqa: F841 - a local the event would show
        raise RuntimeError(f"unexpected state near {config.partners[0].headers['Authorization']}")

    found = list(commands(main))
    assert len(found) >= 15
    runner = CliRunner()
    for args, cmd in found:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cmd, "callback", crash)
            result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert "unexpected error: RuntimeError" in lines[0] and "reported to Sentry as" in lines[0]
        assert BEARER not in result.output
    events = sentry.events()
    assert sorted(e["tags"]["command"] for e in events) == sorted(args[0] for args, _ in found)
    assert all(e["exception"]["values"][-1]["type"] == "RuntimeError" for e in events)
    assert all(e["environment"] == "cli-test" for e in events)
    frames = events[0]["exception"]["values"][-1]["stacktrace"]["frames"]
    assert any(f.get("vars") for f in frames if f.get("in_app")), "local variables of our own frames are kept"
    everything = sentry.everything()
    for value in (BEARER, BOT_TOKEN, sentry.secret, "acme-api-key-42"):
        assert value not in everything


def test_sentry_test_says_whether_the_dsn_accepted_the_event(sentry, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(main, ["sentry-test"])
    assert result.exit_code == 0, result.output
    assert "accepted test event" in result.output
    [event] = sentry.events()
    assert event["level"] == "info" and event["tags"]["syndicate_test"] in event["message"]

    monkeypatch.setenv("SENTRY_DSN", sentry.dsn.replace("publickey", "wrongkey"))
    result = runner.invoke(main, ["sentry-test"])
    assert result.exit_code == 1 and "answered HTTP 403" in result.output and "invalid api key" in result.output

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    monkeypatch.setenv("SENTRY_DSN", f"http://publickey@127.0.0.1:{port}/1")
    result = runner.invoke(main, ["sentry-test"])
    assert result.exit_code == 1 and "could not be reached" in result.output
    assert "Traceback" not in result.output

    monkeypatch.delenv("SENTRY_DSN")
    result = runner.invoke(main, ["sentry-test"])
    assert result.exit_code == 1 and "SENTRY_DSN is not set" in result.output


def test_without_a_dsn_a_crash_line_still_hides_the_configured_secrets(tmp_path, monkeypatch):
    # Without SENTRY_DSN the configuration's secrets are installed when redaction is first
    # used (here: the crash line), not when the command starts.
    secret = new_secret()
    config = tmp_path / "syndication.toml"
    config.write_text(config_text(secret))
    monkeypatch.setenv("SYNDICATE_CONFIG", str(config))
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.delenv("SYNDICATE_TRACEBACK", raising=False)
    runtime.reset()

    def crash(*args, **kwargs):
        raise RuntimeError(f"unexpected state near {secret} and {secret.removeprefix('whsec_')}")

    cmd = main.get_command(click.Context(main), "status")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cmd, "callback", crash)
            result = CliRunner().invoke(main, ["status", "web:x"])
    finally:
        runtime.reset()
    assert result.exit_code == 1, result.output
    assert "unexpected error: RuntimeError: unexpected state near [redacted] and [redacted]" in result.output
    assert "set SENTRY_DSN" in result.output and secret.removeprefix("whsec_") not in result.output
