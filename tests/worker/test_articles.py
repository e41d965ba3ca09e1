"""Articles: validation names the field, and the version sees only what destinations see."""

import json

import pytest

from tests.conftest import REPO
from worker.articles import Article, ArticleInputError, last_per_id, parse_article, read_article_file

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
    ({"colour": "red"}, "colour"),
    ({"content_html": "x" * 2_000_001}, "content_html"),
    ({"published_at": "9999-12-31T23:59:59-05:00"}, "published_at"),
    ({"published_at": "9999-12-30T00:00:00Z"}, "published_at"),
    ({"published_at": "1969-12-31T23:59:59Z"}, "published_at"),
    ({"id": "web:line\nsource=forged"}, "id"),
    ({"id": "web:" + "x" * 300}, "id"),
    ({"id": "we b:1"}, "id"),
    ({"url": "https://news example/a"}, "url"),
    ({"url": "https://news.example:99999/a"}, "url"),
    ({"url": "https://news.example/" + "a" * 2048}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"title": "<script>alert(1)</script>"}, "title"),
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
    assert article.cleaning_notes == ["title: removed control characters", "content_html: removed control characters"]


def test_every_text_field_is_plain_text_without_unsafe_characters():
    article = parse_article(dict(
        EXAMPLE, title="Why &lt;b&gt; tags \u009b\ud800matter<script>x()</script>", summary="<p>One\ufffe</p>",
        authors=["<img src=x onerror=alert(1)>Jo \u0007Reporter", {"name": "Sam"}, 7],
        section="<b>World</b>", tags=["a\x0bb", "", "a\x0bb"],
        image={"url": "https://img.example/a.jpg", "alt": "<script>x</script>Alt\x01"}), "a")
    assert article.title == "Why <b> tags matter"  # the escaped tag is text: decoded once, kept
    assert article.summary == "One" and article.section == "World" and article.tags == ["a b"]  # VT is a space
    assert article.authors == ["Jo Reporter", "Sam"] and article.image.alt == "Alt"
    assert "title: removed <script>" in article.cleaning_notes
    assert "authors: removed <img onerror>" in article.cleaning_notes
    assert "authors: dropped 1 value(s) that were not text" in article.cleaning_notes


def test_over_long_fields_are_cut_with_a_note_and_lists_bounded():
    article = parse_article(dict(EXAMPLE, title="word " * 300, summary="s" * 60_000_00, tags=[f"t{i}" for i in range(150)],
                                 authors=["a" * 500], section="x" * 300), "a")
    assert len(article.title) <= 1000 and article.title.endswith("…")
    assert len(article.summary) <= 10_000 and len(article.tags) == 100
    assert len(article.authors[0]) <= 200 and len(article.section) <= 200
    assert "summary: cut to 10,000 characters (was 6,000,000)" in article.cleaning_notes
    assert "tags: kept the first 100 of 150" in article.cleaning_notes


def test_credentials_are_removed_from_urls():
    article = parse_article(dict(EXAMPLE, url="https://user:secret@news.example/a b",
                                 image={"url": "https://u:p@img.example/a.jpg"}), "a")
    assert article.url == "https://news.example/a%20b" and article.image.url == "https://img.example/a.jpg"
    assert "secret" not in json.dumps(article.data())
    assert {"url: removed credentials", "image.url: removed credentials"} <= set(article.cleaning_notes)


@pytest.mark.parametrize("image, kept", [
    ({"url": "x.jpg"}, None),
    ({"url": "https://ho st/x.jpg"}, None),
    ("https://img.example/a.jpg", None),
    ({"url": "https://img.example/a.jpg", "width": float("inf"), "height": 10**30, "alt": 5},
     {"url": "https://img.example/a.jpg", "alt": "", "width": None, "height": None}),
    ({"url": "https://img.example/a.jpg", "width": 1200.0, "height": 800},
     {"url": "https://img.example/a.jpg", "alt": "", "width": 1200, "height": 800}),
])
def test_an_unusable_image_or_dimension_is_dropped_with_a_note_not_the_story(image, kept):
    article = parse_article(dict(EXAMPLE, image=image), "a")
    assert (article.image.model_dump() if article.image else None) == kept
    assert bool(article.cleaning_notes) == (kept is None or kept["width"] is None)


def test_cleaning_notes_are_not_content():
    plain = parse_article(EXAMPLE, "a")
    noisy = parse_article(dict(EXAMPLE, title=EXAMPLE["title"] + "\x07"), "a")
    assert noisy.cleaning_notes and plain.cleaning_notes == []
    assert noisy.version == plain.version and noisy.data() == plain.data()
    # a stored article read back is not cleaned again (and keeps a title whose text is "<b>")
    from types import SimpleNamespace

    row = SimpleNamespace(**dict(plain.row_values(), title="Why <b> tags matter"))
    assert Article.from_row(row).title == "Why <b> tags matter"


def test_the_same_id_twice_in_a_batch_keeps_the_last_version():
    first, other, second = (parse_article(dict(EXAMPLE, id=i, title=t), "a")
                            for i, t in (("web:1", "One"), ("web:2", "Two"), ("web:1", "One, corrected")))
    kept, repeated = last_per_id([first, other, second])
    assert [(a.id, a.title) for a in kept] == [("web:2", "Two"), ("web:1", "One, corrected")]
    assert repeated == ["web:1"]


def test_one_bad_item_in_a_list_file_does_not_stop_the_others():
    items = [EXAMPLE, dict(EXAMPLE, id="web:2", title=""), dict(EXAMPLE, id="web:3")]
    results = read_article_file(json.dumps(items), "batch.json")
    assert [type(r).__name__ for r in results] == ["Article", "ArticleInputError", "Article"]
    assert results[1].where == "batch.json[1]"


def test_a_file_that_is_not_json_is_one_clear_error():
    [error] = read_article_file("{not json", "broken.json")
    assert isinstance(error, ArticleInputError) and "not valid JSON" in str(error)


@pytest.mark.parametrize("text, fragment", [
    ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
    ('{"id": ' + "1" * 5000 + "}", "id: Input should be a valid string"),
    ('[{"id": "web:x"}, 5, null]', "expected a JSON object, got int"),
    ("[]", "empty list"),
])
def test_unreadable_json_is_a_clear_error_not_a_crash(text, fragment):
    results = read_article_file(text, "f.json")
    assert all(isinstance(r, ArticleInputError) for r in results)
    assert any(fragment in str(r) for r in results), results
