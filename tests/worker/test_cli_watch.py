"""`syndicate poll` and `syndicate rejected` as an operator runs them."""

from __future__ import annotations

import json

from tests.conftest import write_config
from tests.support.wordpress_server import wordpress  # noqa: F401

SOURCE = """
[[sources]]
name = "wp"
type = "wordpress"
url = "{url}"
interval = "1m"
"""


def test_poll_prints_what_it_found_and_rejected_lists_the_bad_posts(deployment, wordpress):
    write_config(deployment.config, extra=SOURCE.format(url=wordpress.url))
    wordpress.set_raw(103, "title", {"rendered": ""})

    polled = deployment.syndicate("poll", "wp", check=True)

    assert "wp: 11 published, 0 updated, 0 unpublished, 0 unchanged, 1 rejected; cursor modified_gmt=" in polled.stdout
    assert "article.published    wp:101" in polled.stdout
    assert "source=wp upstream_id=103 rejected: title.rendered is empty" in polled.stderr
    deployment.env["COLUMNS"] = "240"  # a wide terminal: rich wraps cells to the width it is given
    table = deployment.syndicate("rejected", check=True).stdout
    assert "wp" in table and "103" in table and "title.rendered is empty" in table
    listed = json.loads(deployment.syndicate("rejected", "--source", "wp", "--json", check=True).stdout)
    assert [(r["source"], r["upstream_id"], r["article_id"]) for r in listed] == [("wp", "103", "wp:103")]
    assert json.loads(deployment.syndicate("rejected", "--source", "other", "--json", check=True).stdout) == []
    status = deployment.syndicate("status", "wp:103").stdout
    assert "wp:103  (never stored)" in status and "rejected" in status and "title.rendered is empty" in status


def test_poll_exits_1_when_a_source_fails_and_2_for_an_unknown_source(deployment, wordpress):
    write_config(deployment.config, extra=SOURCE.format(url=wordpress.url))
    wordpress.fail_with("500")
    failed = deployment.syndicate("poll")
    assert failed.returncode == 1 and "wp: FAILED (1 in a row): GET " in failed.stdout
    unknown = deployment.syndicate("poll", "nope")
    assert unknown.returncode == 2 and "no source named 'nope'; configured: wp" in unknown.stderr
