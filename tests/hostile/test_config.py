"""Bad configurations: every value `check` accepts is one the worker can run. Each of
these is refused with a problem naming where it is and what is wrong."""

from __future__ import annotations

import pytest

from config import ConfigError, load_config, parse_config
from tests.conftest import new_secret

SECRET = new_secret()
SITE = """
[site]
title = "London News Net"
url = "https://london-news-net.example"
feeds_url = "https://london-news-net.example/feeds"
"""


def partner(**keys) -> str:
    entry = {"name": '"acme"', "url": '"https://acme.example/hooks"', "secret": f'"{SECRET}"'}
    entry.update(keys)
    return "[[partners]]\n" + "\n".join(f"{k} = {v}" for k, v in entry.items()) + "\n"


def source(**keys) -> str:
    entry = {"name": '"wp"', "type": '"wordpress"', "url": '"https://wp.example/wp-json/wp/v2"'}
    entry.update(keys)
    return "[[sources]]\n" + "\n".join(f"{k} = {v}" for k, v in entry.items()) + "\n"


def channel(**keys) -> str:
    entry = {"name": '"social"', "type": '"mastodon"', "base_url": '"https://mastodon.example"', "token": '"t0ken"'}
    entry.update(keys)
    return "[[channels]]\n" + "\n".join(f"{k} = {v}" for k, v in entry.items()) + "\n"


BAD = [
    # durations: finite, bounded per key
    ("retry-inf", partner(retry_schedule="[inf]"), "[[partners]] 'acme' retry_schedule[0]", "finite"),
    ("retry-nan", partner(retry_schedule="[nan]"), "retry_schedule[0]", "finite"),
    ("retry-year", partner(retry_schedule='["400d"]'), "retry_schedule[0]", "to 7d"),
    ("retry-negative", partner(retry_schedule='["-5s"]'), "retry_schedule[0]", "expected a duration"),
    ("interval-inf", source(interval="inf"), "[[sources]] 'wp' interval", "finite"),
    ("interval-zero", source(interval='"0s"'), "[[sources]] 'wp' interval", "from 1s to 1d"),
    ("interval-huge", source(interval='"100000000d"'), "[[sources]] 'wp' interval", "at most 3650d"),
    ("source-timeout-huge", source(timeout='"2h"'), "[[sources]] 'wp' timeout", "to 5m"),
    ("window-inf", source(unpublish_window="inf"), "unpublish_window", "finite"),
    ("partner-timeout-zero", partner(timeout='"0s"'), "[[partners]] 'acme' timeout", "more than"),
    ("channel-retry-inf", channel(retry_schedule="[inf]"), "[[channels]] 'social' retry_schedule[0]", "finite"),
    ("channel-delay-year", channel(delay='"365d"'), "[[channels]] 'social' delay", "to 7d"),
    ("rebuild-window-inf", "[feed_settings]\nrebuild_window = inf\n", "[feed_settings] rebuild_window", "finite"),
    # headers: names are tokens, values carry no CR/LF, framing and signature headers are ours
    ("header-crlf-value", partner(headers='{ "X-Token" = "a\\r\\nX-Injected: 1" }'), "headers", "CR, LF"),
    ("header-lf-name", partner(headers='{ "X-A\\nB" = "1" }'), "headers", "not a valid HTTP header name"),
    ("header-space-name", partner(headers='{ "X Token" = "1" }'), "headers", "not a valid HTTP header name"),
    ("header-content-length", partner(headers='{ "content-length" = "1" }'), "headers", "syndicate sets it"),
    ("header-host", partner(headers='{ "Host" = "evil.example" }'), "headers", "syndicate sets it"),
    ("header-transfer-encoding", partner(headers='{ "Transfer-Encoding" = "chunked" }'), "headers",
     "syndicate sets it"),
    ("header-connection", partner(headers='{ "Connection" = "close" }'), "headers", "syndicate sets it"),
    ("header-signature", partner(headers='{ "webhook-signature" = "v1,x" }'), "headers", "syndicate sets it"),
    ("header-nul-value", partner(headers='{ "X-A" = "a\\u0000b" }'), "headers", "control characters"),
    # ports and hosts
    ("port-99999", partner(url='"https://acme.example:99999/hooks"'), "[[partners]] 'acme' url", "Port out of range"),
    ("port-zero", partner(url='"https://acme.example:0/hooks"'), "[[partners]] 'acme' url", "port 0"),
    ("host-space", partner(url='"https://acme example/hooks"'), "[[partners]] 'acme' url", "space"),
    ("source-port", source(url='"https://wp.example:70000/wp-json/wp/v2"'), "[[sources]] 'wp' url",
     "Port out of range"),
    ("hub-bad-host", '[websub]\nhubs = ["https://hub_.exa mple/"]\n', "[websub] hubs[0]", "space"),
    # booleans are booleans
    ("allow-private-yes", partner(allow_private='"yes"'), "[[partners]] 'acme' allow_private",
     "Input should be a valid boolean"),
    ("allow-private-1", partner(allow_private="1"), "allow_private", "Input should be a valid boolean"),
    ("news-sitemap-string", '[feed_settings]\nnews_sitemap = "false"\n', "[feed_settings] news_sitemap",
     "valid boolean"),
    ("channel-hashtags-string", channel(hashtags='"no"'), "[[channels]] 'social' hashtags", "valid boolean"),
    ("feed-limit-string", '[[feeds]]\nname = "all"\ntitle = "All"\nlimit = "50"\n', "[[feeds]] 'all' limit",
     "valid integer"),
    # names and text that would break ids, rows, feeds or log lines
    ("source-name-colon", source(name='"wp:main"'), "[[sources]] 'wp:main' name", "starts its articles' ids"),
    ("source-name-long", source(name='"' + "s" * 101 + '"'), "name", "1 to 100"),
    ("partner-name-control", partner(name='"acme\\u0007"'), "name", "control character U+0007"),
    ("partner-name-long", partner(name='"' + "p" * 101 + '"'), "name", "1 to 100 characters"),
    ("site-title-control", SITE.replace('"London News Net"', '"London\\u000bNews"', 1), "[site] title",
     "control character U+000B"),
    ("feed-title-control", '[[feeds]]\nname = "all"\ntitle = "All\\u0000"\n', "[[feeds]] 'all' title",
     "control character"),
]


@pytest.mark.parametrize("name, text, where, what", BAD, ids=[b[0] for b in BAD])
def test_a_value_the_worker_cannot_run_is_refused_naming_where_and_why(name, text, where, what):
    body = text if text.startswith("\n[site]") else SITE + text
    with pytest.raises(ConfigError) as info:
        parse_config(body, "syndication.toml", {})
    problems = [str(p) for p in info.value.problems]
    assert any(where in p and what in p for p in problems), problems


def test_the_good_values_next_to_them_still_pass():
    config = parse_config(SITE + partner(retry_schedule='["1s", "7d"]', headers='{ "Authorization" = "Bearer x" }',
                                         allow_private="true", url='"https://acme.example:8443/hooks"')
                          + source(interval='"1d"', timeout='"5m"') + channel(delay='"2h"', template='"{title}\\n{url}"'),
                          "syndication.toml", {})
    assert config.partners[0].retry_schedule == [1, 7 * 86400]
    assert config.channels[0].template == "{title}\n{url}"


@pytest.mark.parametrize("make, fragment", [
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: tmp / "missing.toml", "no such file"),
])
def test_a_config_path_that_is_not_a_file_is_one_clear_problem(tmp_path, make, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(make(tmp_path), env={})
    assert fragment in str(info.value)
