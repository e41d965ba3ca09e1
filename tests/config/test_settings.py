"""Configuration: every problem named with where it is, secrets resolved from the environment."""

import pytest

from config import ConfigError, load_config, parse_config, parse_duration
from tests.conftest import REPO, new_secret

GOOD_SECRET = new_secret()

BROKEN = """
[site]
title = "London News Net"
url = "ftp://london-news-net.example"
feeds_url = "https://london-news-net.example/feeds"
langauge = "en"

[[sources]]
name = "wp"
type = "wordpress"
interval = "soon"

[[feeds]]
name = "all"
title = "All"
limit = 0

[[partners]]
name = "acme"
url = "https://acme.example/hooks"
secret = "${ACME_SECRET}"
secert = "typo"

[[partners]]
name = "acme"
url = "gopher://other.example"
secret = "not-a-secret"
events = ["article.deleted"]
"""


def problems_of(text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "syndication.toml", env or {})
    return [str(p) for p in info.value.problems]


def test_every_problem_is_reported_in_one_run_with_its_location():
    # given a file with nine distinct mistakes, when it is checked
    found = problems_of(BROKEN)
    # then each is named with table, entry and key
    expected = [
        "[site] url: expected an absolute http or https URL",
        "[site] langauge: unknown key",
        "[[sources]] 'wp' interval: expected a duration",
        "[[sources]] 'wp' url: a wordpress source needs a url",
        "[[feeds]] 'all' limit: Input should be greater than or equal to 1",
        "[[partners]] 'acme' secret: environment variable ACME_SECRET is not set",
        "[[partners]] 'acme' secert: unknown key",
        "[[partners]] 'acme': duplicate name",
        "[[partners]] 'acme' url: expected an absolute http or https URL, got 'gopher://other.example'",
        "[[partners]] 'acme' secret: expected a secret of the form whsec_<base64>",
        "[[partners]] 'acme' events[0]: Input should be 'article.published'",
    ]
    for fragment in expected:
        assert any(fragment in p for p in found), f"{fragment!r} not in {found}"
    # an unset variable is reported once, not again as an invalid secret
    assert sum("acme' secret" in p for p in found) == 2


def test_env_references_are_resolved_when_loaded():
    text = BROKEN.split("[[partners]]")[0].replace("ftp://", "https://").replace('langauge = "en"', "")
    text = text.replace('interval = "soon"', 'interval = "5m"\nurl = "${WP_URL}"').replace("limit = 0", "limit = 20")
    text += '[[partners]]\nname = "acme"\nurl = "https://acme.example/h"\nsecret = "${ACME}"\n'
    config = parse_config(text, "x.toml", {"ACME": GOOD_SECRET, "WP_URL": "https://wp.example/wp-json/wp/v2"})
    assert config.partners[0].secret == GOOD_SECRET
    assert config.sources[0].url == "https://wp.example/wp-json/wp/v2"
    assert config.sources[0].interval == 300


def test_secret_never_appears_in_the_repr_of_a_partner():
    text = f'[site]\ntitle="t"\nurl="https://a.example"\nfeeds_url="https://a.example/f"\n' \
           f'[[partners]]\nname="p"\nurl="https://p.example"\nsecret="{GOOD_SECRET}"\n'
    config = parse_config(text, "x.toml", {})
    assert GOOD_SECRET not in repr(config)
    assert GOOD_SECRET in config.secrets()


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("250ms", 0.25), (12, 12)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-3s", "", "h", True])
def test_bad_durations_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_invalid_toml_is_reported_with_the_parser_message():
    found = problems_of("[site\ntitle = 1")
    assert len(found) == 1 and found[0].startswith("(file): not valid TOML")


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", env={})
    assert "syndication.example.toml" in str(info.value)


def test_the_shipped_example_is_valid_as_it_is():
    # Out of the box it needs nothing but Redis: no variables, no reachable site or partner.
    config = load_config(REPO / "config" / "syndication.example.toml", env={})
    assert [f.name for f in config.feeds] == ["all", "world"]
    assert [(s.name, s.type) for s in config.sources] == [("dropbox", "directory")]
    assert config.partners == []


def test_the_examples_partner_block_is_valid_once_uncommented():
    text = (REPO / "config" / "syndication.example.toml").read_text()
    block = text[text.index("# [[partners]]"):].split("\n\n")[0]
    partner = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    site = text[text.index("[site]"):text.index("# Where articles come from")]
    config = parse_config(site + partner, "x.toml", {"AGGREGATOR_SECRET": GOOD_SECRET,
                                                      "AGGREGATOR_OLD_SECRET": new_secret()})
    assert config.partners[0].retry_schedule == [5, 300, 1800, 7200, 18000, 36000, 36000]
