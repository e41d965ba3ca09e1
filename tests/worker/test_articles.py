"""Articles: validation names the field, and the version sees only what destinations see."""

import json

import pytest

from tests.conftest import REPO
from worker.articles import ArticleInputError, parse_article, read_article_file

EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())


def test_the_example_article_is_valid():
    article = parse_article(EXAMPLE, "article.json")
    assert article.source == "web"
    assert article.updated_at == article.published_at
    assert article.data()["published_at"] == "2026-11-26T09:00:00Z"


def test_whitespace_and_bookkeeping_changes_keep_the_version():
    base = parse_article(EXAMPLE, "a")
    spaced = dict(EXAMPLE, content_html=EXAMPLE["content_html"].replace("</p><p>", "</p>\n\n  <p>"),
                  title="  " + EXAMPLE["title"] + " ", updated_at="2026-11-26T10:00:00Z")
    assert parse_article(spaced, "a").version == base.version


@pytest.mark.parametrize("field,value", [("title", "A new title"), ("section", "Europe"),
                                         ("tags", ["Russia"]), ("content_html", "<p>Corrected.</p>")])
def test_visible_changes_change_the_version(field, value):
    assert parse_article(dict(EXAMPLE, **{field: value}), "a").version != parse_article(EXAMPLE, "a").version


@pytest.mark.parametrize("change,field", [
    ({"title": "   "}, "title"),
    ({"id": "no-source-prefix"}, "id"),
    ({"url": "/relative"}, "url"),
    ({"published_at": "yesterday"}, "published_at"),
    ({"published_at": "2026-11-26T09:00:00"}, "published_at"),
    ({"image": {"url": "x.jpg"}}, "image.url"),
    ({"colour": "red"}, "colour"),
    ({"content_html": "x" * 2_000_001}, "content_html"),
])
def test_invalid_fields_are_named(change, field):
    with pytest.raises(ArticleInputError) as info:
        parse_article(dict(EXAMPLE, **change), "story.json")
    assert info.value.where == "story.json"
    assert any(p.startswith(field + ":") for p in info.value.problems), info.value.problems


def test_a_missing_field_is_named():
    data = {k: v for k, v in EXAMPLE.items() if k != "url"}
    with pytest.raises(ArticleInputError) as info:
        parse_article(data, "story.json")
    assert "url: required field is missing" in info.value.problems


def test_control_characters_are_removed():
    article = parse_article(dict(EXAMPLE, title="Breaking\x00 news\x1b", content_html="<p>a\x07b</p>"), "a")
    assert article.title == "Breaking news"
    assert article.content_html == "<p>ab</p>"


def test_one_bad_item_in_a_list_file_does_not_stop_the_others():
    items = [EXAMPLE, dict(EXAMPLE, id="web:2", title=""), dict(EXAMPLE, id="web:3")]
    results = read_article_file(json.dumps(items), "batch.json")
    assert [type(r).__name__ for r in results] == ["Article", "ArticleInputError", "Article"]
    assert results[1].where == "batch.json[1]"


def test_a_file_that_is_not_json_is_one_clear_error():
    [error] = read_article_file("{not json", "broken.json")
    assert isinstance(error, ArticleInputError) and "not valid JSON" in str(error)
