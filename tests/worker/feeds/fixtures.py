"""Test input for feeds: the WordPress fixture posts as articles, and hostile articles.

The WordPress source is written elsewhere; this converts the REST API's post shape
(with `_embedded` authors, terms and featured media) on its own, so feed tests do
not depend on it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.conftest import FIXTURES
from worker.articles import Article, parse_article

WORDPRESS_POSTS = FIXTURES / "wordpress" / "posts.json"


def wordpress_article(post: dict, source: str = "wp") -> Article:
    embedded = post.get("_embedded", {})
    terms = embedded.get("wp:term", [[], []])
    categories = [t["name"] for t in terms[0]] if terms else []
    tags = [t["name"] for t in terms[1]] if len(terms) > 1 else []
    media = (embedded.get("wp:featuredmedia") or [None])[0]
    image = None
    if media and media.get("source_url"):
        details = media.get("media_details") or {}
        image = {"url": media["source_url"], "alt": media.get("alt_text", ""),
                 "width": details.get("width"), "height": details.get("height")}
    return parse_article({
        "id": f"{source}:{post['id']}",
        "url": post["link"],
        "title": post["title"]["rendered"],
        # The excerpt is HTML in the REST API; feeds must cope with it as it comes.
        "summary": post["excerpt"]["rendered"],
        "content_html": post["content"]["rendered"],
        "authors": [a["name"] for a in embedded.get("author", [])],
        "section": categories[0] if categories else None,
        "tags": tags,
        "image": image,
        "language": post.get("lang"),
        "published_at": post["date_gmt"] + "Z",
        "updated_at": post["modified_gmt"] + "Z",
        "status": "published" if post["status"] == "publish" else "unpublished",
    }, f"posts.json#{post['id']}")


def wordpress_articles() -> list[Article]:
    return [wordpress_article(p) for p in json.loads(WORDPRESS_POSTS.read_text())]


HOSTILE_BODY = (
    '<p onclick="steal()" style="position:fixed">Lead <a href="/world/other-story/">related</a> '
    '<a href="javascript:alert(1)">click</a> <a href="JaVaScRiPt:alert(2)">again</a> '
    '<a href="data:text/html;base64,PHNjcmlwdD4=">data</a></p>'
    '<script>document.cookie</script><style>body{display:none}</style>'
    '<img src="../media/photo.jpg" onerror="alert(3)" srcset="tiny.jpg 1x" alt="A photo">'
    '<img src="//cdn.example.org/i.png">'
    '<iframe src="https://evil.example/phish"><p>fallback</p></iframe>'
    '<iframe src="https://www.youtube.com/embed/abc123" allowfullscreen allow="camera; microphone"></iframe>'
    '<iframe src="http://www.youtube.com/embed/plaintext"></iframe>'
    '<svg onload="alert(4)"><circle r="1"/></svg><form action="/x"><input name="q"></form>'
    '<object data="x.swf"></object><embed src="y.swf"><base href="https://evil.example/">'
    '<!-- a comment with ]]> and -- inside -->'
    '<p>CDATA end ]]> in text, &amp; an ampersand, <b>bold</b>, a control\x01char, a DEL\x7f and C1\x85.</p>'
    '<table><tr><td>cell</td></tr></table><p>unclosed <em>emphasis'
)


def hostile_articles(now: datetime | None = None) -> list[Article]:
    """Articles built to break feeds: markup and entities in titles, scripts, controls, odd URLs."""
    now = now or datetime.now(timezone.utc)
    base = {
        "authors": ["Ann <b>Bold</b> &amp; Co", "", "Ann <b>Bold</b> &amp; Co"],
        "section": "World",
        "tags": ["Security & Safety", "<i>markup</i>", "World"],
        "language": "en",
    }
    return [
        parse_article(dict(base, **{
            "id": "web:hostile-1",
            "url": "https://london-news-net.example/world/hostile-story/",
            "title": "<em>Markup</em> &amp; entities: AT&amp;T&#8217;s 5 &lt; 6 ]]> story",
            "summary": "<p>A summary with <a href='/x'>a link</a> &amp; an entity</p>",
            "content_html": HOSTILE_BODY,
            "image": {"url": "https://london-news-net.example/media/photo one.JPG", "alt": "<b>alt</b> & text",
                      "width": 1200, "height": 800},
            "published_at": (now - timedelta(minutes=5)).isoformat(),
            "updated_at": (now - timedelta(minutes=1)).isoformat(),
        }), "hostile-1"),
        parse_article(dict(base, **{
            "id": "web:hostile-2/with spaces & ünïcode",
            "url": "https://london-news-net.example/wörld/story with spaces/?q=a b&c=[1]",
            "title": "Ünïcode — “quotes” and emoji 📰",
            "summary": "",
            "content_html": "<p>Body only, no summary. " + "Long text. " * 100 + "</p>",
            "authors": [],
            "section": None,
            "tags": [],
            "image": {"url": "https://cdn.example.org/images/abc?w=1200", "alt": ""},
            "language": "not a language",
            "published_at": (now - timedelta(minutes=10)).isoformat(),
        }), "hostile-2"),
        parse_article(dict(base, **{
            "id": "web:hostile-3",
            "url": "https://london-news-net.example/empty-body/",
            "title": "Empty body",
            "summary": "Only a summary \u0085 with C1",
            "content_html": "",
            "image": None,
            "language": "fr",
            "published_at": (now - timedelta(minutes=20)).isoformat(),
        }), "hostile-3"),
    ]
