"""What the source boundary does to upstream HTML and text, the same for every source."""

import pytest

from worker.sources.base import InputProblem, check_controls, checked_body, hostile_markup, html_to_text


def test_rendered_html_becomes_text_once():
    assert html_to_text("Russia&#8217;s <em>grain</em> &amp; frost [&hellip;]") == "Russia\u2019s grain & frost [\u2026]"
    # an escaped tag is text, not markup, after the single decoding
    assert html_to_text("Why &lt;script&gt; tags matter") == "Why <script> tags matter"


def test_embeds_lose_their_scripts_and_frames_but_keep_their_text():
    body = ('<figure><blockquote class="twitter-tweet"><p>Tweet text</p></blockquote>'
            '<script async src="https://platform.twitter.com/widgets.js"></script></figure>'
            '<iframe src="https://www.youtube.com/embed/x">fallback</iframe><p>Body <a href="https://x.example/">link</a></p>'
            '<style>p{color:red}</style>')
    clean = checked_body("content", body)
    assert "<script" not in clean and "<iframe" not in clean and "color:red" not in clean and "fallback" not in clean
    assert "<p>Tweet text</p>" in clean and '<a href="https://x.example/">link</a>' in clean


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
