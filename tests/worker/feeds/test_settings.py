"""`[feed_settings]` and the feed-related checks: every mistake named with where it is."""

import pytest

from config import ConfigError, parse_config

SITE = '[site]\ntitle = "t"\nurl = "https://a.example"\nfeeds_url = "https://a.example/feeds"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(SITE + text, "syndication.toml", {})
    return [str(p) for p in info.value.problems]


def test_defaults_apply_when_the_table_is_absent():
    settings = parse_config(SITE, "syndication.toml", {}).feed_settings
    assert settings.rebuild_window == 2.0 and settings.news_sitemap is True
    assert settings.iframe_hosts == ["www.youtube.com", "www.youtube-nocookie.com", "player.vimeo.com"]


def test_values_are_read():
    config = parse_config(SITE + '[feed_settings]\nrebuild_window = "500ms"\niframe_hosts = [".Example.com"]\n'
                          'news_sitemap = false\n', "syndication.toml", {})
    assert config.feed_settings.rebuild_window == 0.5
    assert config.feed_settings.iframe_hosts == [".example.com"]
    assert config.feed_settings.news_sitemap is False


def test_every_mistake_is_named():
    found = problems('[feed_settings]\nrebuild_window = "soon"\niframe_hosts = ["https://www.youtube.com/embed"]\n'
                     'news_sitmap = true\n[[feeds]]\nname = "f"\ntitle = "F"\ntags = [""]\n')
    assert any(p.startswith("[feed_settings] rebuild_window: expected a duration") for p in found), found
    assert any(p.startswith("[feed_settings] iframe_hosts") and "no scheme or path" in p for p in found), found
    assert "[feed_settings] news_sitmap: unknown key (check the spelling; see config/syndication.example.toml)" \
        in found
    assert any(p.startswith("[[feeds]] 'f' tags") and "1 to 200 characters" in p for p in found), found


def test_the_window_stays_within_what_the_broker_holds():
    assert any("rebuild_window" in p and "less than or equal to 300" in p
               for p in problems('[feed_settings]\nrebuild_window = "10m"\n'))
