"""Fixtures shared by the pipeline tests (storing articles, their events and deliveries)."""

import pytest

from config import parse_config
from tests.conftest import new_secret


@pytest.fixture
def config():
    """A site with three feeds (all, World, Sport) and two partners: one takes everything,
    the other World stories' first publication only."""
    secret = new_secret()
    return parse_config(f"""
[site]
title = "LNN"
url = "https://lnn.example"
feeds_url = "https://lnn.example/feeds"
[[feeds]]
name = "all"
title = "All"
[[feeds]]
name = "world"
title = "World"
sections = ["World"]
[[feeds]]
name = "sport"
title = "Sport"
sections = ["Sport"]
[[partners]]
name = "everything"
url = "https://a.example/h"
secret = "{secret}"
[[partners]]
name = "world-only"
url = "https://b.example/h"
secret = "{secret}"
sections = ["World"]
events = ["article.published"]
""", "test.toml", {})
