"""What the source boundary does to upstream HTML and text, the same for every source:
nothing is refused for its markup; it is cleaned where articles are stored, and noted."""

import json

import pytest

from config import parse_config
from worker.articles import parse_article
from worker.pipeline import republishable
from worker.sources.base import InputProblem, as_html_text, bounded_body, html_to_text, parse_utc, split_json_array

CONFIG = parse_config('[site]\ntitle="t"\nurl="https://x.example"\nfeeds_url="https://x.example/f"\n', "t", {})


def stored_body(body: str):
    article = parse_article({"id": "wp:1", "url": "https://x.example/a/", "title": "t", "content_html": body,
                             "published_at": "2026-11-26T09:00:00Z"}, "t")
    return article, republishable(article, CONFIG).content_html


def test_rendered_html_becomes_text_once():
    assert html_to_text("Russia&#8217;s <em>grain</em> &amp; frost [&hellip;]") == "Russia\u2019s grain & frost [\u2026]"
    # an escaped tag is text, not markup, after the single decoding
    assert html_to_text("Why &lt;script&gt; tags matter") == "Why <script> tags matter"
    # plain text from upstream is escaped so that the one decoding gives it back
    assert html_to_text(as_html_text("AT&T <b> & co")) == "AT&T <b> & co"


def test_embeds_pass_the_boundary_and_are_cleaned_where_articles_are_stored():
    # given a WordPress body with a tweet embed, a video frame and a style block
    body = ('<figure><blockquote class="twitter-tweet"><p>Tweet text</p></blockquote>'
            '<script async src="https://platform.twitter.com/widgets.js"></script></figure>'
            '<iframe src="https://www.youtube.com/embed/x">fallback</iframe>'
            '<iframe src="https://ads.example/frame">ad</iframe><p>Body <a href="/local">link</a></p>'
            '<style>p{color:red}</style>')
    assert bounded_body("content", body) == body
    article, clean = stored_body(body)
    assert "<script" not in clean and "color:red" not in clean and "ads.example" not in clean and ">ad<" not in clean
    assert '<iframe src="https://www.youtube.com/embed/x"' in clean
    assert "<p>Tweet text</p>" in clean and '<a href="https://x.example/local">link</a>' in clean
    assert "content_html: removed <script>" in article.cleaning_notes


@pytest.mark.parametrize("markup, note", [
    ('<img src="a.jpg" onerror="alert(1)">', "<img onerror>"),
    ('<a href=" JavaScript:alert(1)">x</a>', "javascript: URL"),
    ('<a href="vbscript:msgbox">x</a>', "vbscript: URL"),
    ('<iframe src="data:text/html;base64,PHNjcmlwdD4=">', "data: URL"),
    ('<body onload="x()">', "<body onload>"),
    ('<svg><a xlink:href="javascript:alert(1)">x</a></svg>', "<svg>"),
])
def test_markup_that_attacks_readers_is_removed_and_noted_not_refused(markup, note):
    # before: the story was held back ("hostile HTML"); now it goes out without the markup
    article, clean = stored_body("<p>Story</p>" + markup)
    assert "<p>Story</p>" in clean
    for gone in ("onerror", "javascript", "vbscript", "data:", "onload", "<svg"):
        assert gone not in clean.lower()
    assert f"content_html: removed {note}" in article.cleaning_notes


def test_ordinary_story_markup_has_no_notes():
    text = '<p>The <a href="https://x.example/on">online</a> vote on <em>data</em>: <img src="https://x.example/a.jpg" alt="on">.</p>'
    article, clean = stored_body(text)
    assert article.cleaning_notes == [] and clean == text


def test_a_body_over_the_limit_is_refused_naming_the_limit():
    with pytest.raises(InputProblem, match="content is 2,000,001 characters; the limit is 2,000,000"):
        bounded_body("content", "x" * 2_000_001)


def test_a_date_that_overflows_when_converted_to_utc_is_an_input_problem():
    with pytest.raises(InputProblem, match="out of range"):
        parse_utc("9999-12-31T23:59:59-05:00", "date", naive_is_utc=False)


def test_a_json_array_is_split_into_its_elements_without_parsing_them():
    deep = "[" * 5000 + "]" * 5000
    text = json.dumps([{"id": 1, "t": "a, [b] {c} \"q\" \\"}, {"id": 2}])[:-1] + ", " + deep + "]"
    pieces = split_json_array(text)
    assert len(pieces) == 3
    assert json.loads(pieces[0]) == {"id": 1, "t": "a, [b] {c} \"q\" \\"} and json.loads(pieces[1]) == {"id": 2}
    assert pieces[2].strip() == deep
    assert split_json_array('{"not": "an array"}') is None
