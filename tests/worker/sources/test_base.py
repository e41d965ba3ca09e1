"""What the source boundary does to upstream HTML and text, the same for every source."""

import pytest

from worker.sources.base import InputProblem, check_controls, checked_body, hostile_markup, html_to_text


def test_rendered_html_becomes_text_once():
    assert html_to_text("Russia&#8217;s <em>grain</em> &amp; frost [&hellip;]") == "Russia\u2019s grain & frost [\u2026]"
    # an escaped tag is text, not markup, after the single decoding
    assert html_to_text("Why &lt;script&gt; tags matter") == "Why <script> tags matter"


def test_embeds_pass_the_boundary_check_and_are_cleaned_where_articles_are_stored():
    # given a WordPress body with a tweet embed, a video frame and a style block
    body = ('<figure><blockquote class="twitter-tweet"><p>Tweet text</p></blockquote>'
            '<script async src="https://platform.twitter.com/widgets.js"></script></figure>'
            '<iframe src="https://www.youtube.com/embed/x">fallback</iframe>'
            '<iframe src="https://ads.example/frame">ad</iframe><p>Body <a href="/local">link</a></p>'
            '<style>p{color:red}</style>')
    # the source boundary refuses nothing here (no handler, no active URL)...
    assert checked_body("content", body) == body
    # ...and storing it keeps the story and the allow-listed frame, and drops the rest
    from config import parse_config
    from worker.articles import parse_article
    from worker.pipeline import republishable

    config = parse_config('[site]\ntitle="t"\nurl="https://x.example"\nfeeds_url="https://x.example/f"\n', "t", {})
    article = parse_article({"id": "wp:1", "url": "https://x.example/a/", "title": "t", "content_html": body,
                             "published_at": "2026-11-26T09:00:00Z"}, "t")
    clean = republishable(article, config).content_html
    assert "<script" not in clean and "color:red" not in clean and "ads.example" not in clean and ">ad<" not in clean
    assert '<iframe src="https://www.youtube.com/embed/x"' in clean
    assert "<p>Tweet text</p>" in clean and '<a href="https://x.example/local">link</a>' in clean


@pytest.mark.parametrize("markup", [
    '<img src="a.jpg" onerror="alert(1)">',
    '<a href=" JavaScript:alert(1)">x</a>',
    '<a href="vbscript:msgbox">x</a>',
    '<iframe src="data:text/html;base64,PHNjcmlwdD4=">',
    '<body onload="x()">',
    '<svg><a xlink:href="javascript:alert(1)">x</a></svg>',
])
def test_markup_that_only_attacks_readers_is_refused(markup):
    assert hostile_markup(markup)
    with pytest.raises(InputProblem, match="hostile HTML"):
        checked_body("content", markup)


def test_ordinary_story_markup_is_not_hostile():
    text = '<p>The <a href="https://x.example/on">online</a> vote on <em>data</em>: <img src="https://x.example/a.jpg" alt="on">.</p>'
    assert hostile_markup(text) == []
    assert checked_body("content", text) == text


def test_control_characters_are_named_with_their_place():
    with pytest.raises(InputProblem, match=r"title contains control character U\+001B at position 3"):
        check_controls("title", "abc\x1bdef")
    check_controls("title", "tabs\tand\nnewlines are fine")
