"""Redaction by value (every configured secret, in every form) and by shape (credentials
whatever their value), and the Sentry hooks that apply it."""

import base64

import pytest

from config import parse_config
from tests.conftest import new_secret
from worker.observability import before_send, redact
from worker.observability.redaction import REDACTED, config_secrets, scrub, secret_forms, secret_keys
from worker.observability.sentry import before_breadcrumb, before_send_transaction

BOT_TOKEN = "7123456789:AAH-telegram-bot-token-value_123"
BEARER = "partner-bearer-token-0123456789"


def config_text(secret: str) -> str:
    """A configuration with a secret of every kind: partner secret and headers, a WordPress
    app password, a Telegram bot token, X's four OAuth 1.0a credentials."""
    return f"""
[site]
title = "LNN"
url = "https://lnn.example"
feeds_url = "https://lnn.example/feeds"

[[sources]]
name = "wp"
type = "wordpress"
url = "https://wp.lnn.example"
username = "editor"
app_password = "abcd efgh ijkl mnop"

[[partners]]
name = "acme"
url = "https://acme.example/hooks"
secret = "{secret}"
headers = {{ Authorization = "Bearer {BEARER}", X-Api-Key = "acme-api-key-42" }}

[[channels]]
name = "tg"
type = "telegram"
token = "{BOT_TOKEN}"
chat_id = "@lnn_news"

[[channels]]
name = "x"
type = "x"
consumer_key = "x-consumer-key-1"
consumer_secret = "x-consumer-secret-1"
access_token = "x-access-token-1"
access_token_secret = "x-access-token-secret-1"
"""


def config_with_secrets(secret: str):
    return parse_config(config_text(secret), "test.toml", {})


def test_every_form_of_a_configured_secret_is_redacted():
    secret = new_secret()
    config = config_with_secrets(secret)
    values = config_secrets(config)
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    basic = base64.b64encode(b"editor:abcd efgh ijkl mnop").decode()
    for form in (secret, secret.removeprefix("whsec_"), repr(raw), raw.hex(), BEARER, "acme-api-key-42",
                 BOT_TOKEN, "x-access-token-secret-1", "abcd efgh ijkl mnop", basic):
        assert form not in redact(f"before {form} after", values), form
    assert {"authorization", "x-api-key", "token", "consumer_secret"} <= secret_keys(config)


@pytest.mark.parametrize("text, kept", [
    ("POST https://api.telegram.org/bot123456:AAFsomething-long_token/sendMessage", "api.telegram.org/bot"),
    ("postgresql://postgres:db-password@db:5432/syndicate", "@db:5432"),
    ("GET https://graph.facebook.com/v21.0/me?fields=id&access_token=EAAB123secret", "fields=id"),
    ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "Authorization: Bearer"),
    ("webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=", "webhook-signature"),
    ("session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjIn0.c2lnbmF0dXJlLXZhbHVl", "session"),
])
def test_credentials_are_redacted_by_shape_whatever_their_value(text, kept):
    out = redact(text, [])
    assert REDACTED in out and kept in out
    for secret in ("AAFsomething", "db-password", "EAAB123secret", "abcdefghijklmnop", "K5oZfzN95Z9",
                   "c2lnbmF0dXJl"):
        assert secret not in out


def test_prose_is_left_alone():
    text = "Token expired; the partner answered HTTP 503: service unavailable (retry in 5s)"
    assert redact(text, []) == text


def test_scrub_replaces_values_under_secret_keys_and_every_string():
    out = scrub({"headers": {"X-Api-Key": "short", "accept": "json"}, "url": "https://u:p@h/x",
                 "list": ["Bearer abcdefghijklmnop"]}, keys={"x-api-key"})
    assert out == {"headers": {"X-Api-Key": REDACTED, "accept": "json"}, "url": f"https://{REDACTED}@h/x",
                   "list": [f"Bearer {REDACTED}"]}


def test_hooks_drop_error_log_lines_without_an_exception_and_library_locals():
    # An ERROR log line is a breadcrumb: the capture policy reports what deserves an issue.
    assert before_send({"logger": "syndicate.delivery", "logentry": {"message": "x"}}, {"log_record": object()}) is None
    event = {"exception": {"values": [{"stacktrace": {"frames": [
        {"module": "standardwebhooks.webhooks", "in_app": False, "vars": {"key": "b'\\x01'"}},
        {"module": "worker.transports.webhook", "in_app": True, "vars": {"url": "https://u:p@h/"}},
    ]}}]}}
    frames = before_send(event, {"log_record": object()})["exception"]["values"][0]["stacktrace"]["frames"]
    assert "vars" not in frames[0]
    assert frames[1]["vars"] == {"url": f"https://{REDACTED}@h/"}
    crumb = before_breadcrumb({"data": {"url": "https://api.telegram.org/bot1:ABCDEF/sendMessage"}}, {})
    assert crumb["data"]["url"] == f"https://api.telegram.org/bot{REDACTED}/sendMessage"
    tx = before_send_transaction({"type": "transaction", "spans": [
        {"op": "http.client", "description": "POST https://api.telegram.org/bot1:ABCDEF/sendMessage"}]}, {})
    assert "ABCDEF" not in str(tx)


def test_secret_forms_of_a_plain_token_include_url_encoding():
    assert "a%2Fb%3Dc" in secret_forms("a/b=c")


def test_secrets_installed_on_first_use_are_in_before_any_redaction_returns():
    # A process without a DSN installs the configuration's secrets when it first redacts;
    # a thread redacting meanwhile waits for them, and a log line the install writes
    # (redacted with what is known so far) does not deadlock it.
    import threading
    import time

    from worker.observability.redaction import install_secrets, install_secrets_on_first_use

    secret = new_secret()
    loading = threading.Event()

    def install():
        loading.set()
        time.sleep(0.1)  # a configuration being read
        redact("a line logged while loading")
        install_secrets([secret])

    install_secrets_on_first_use(install)
    results = []
    first = threading.Thread(target=lambda: results.append(redact(f"first {secret}")))
    first.start()
    assert loading.wait(5)
    results.append(redact(f"second {secret}"))
    first.join(5)
    assert len(results) == 2 and all(secret not in r and "[redacted]" in r for r in results), results
