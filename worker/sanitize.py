"""HTML and text that are safe to republish: applied once where articles are stored
(`worker.pipeline.republishable`) and again, defensively, when feed entries are prepared.

`sanitize_html` runs a story's body through nh3 (the Rust `ammonia` sanitizer, an
allow-list HTML5 parser, not regular expressions):

- only an allow-list of tags and attributes survives: `<script>`, `<style>`, forms,
  `<object>`, `<embed>`, `<noscript>` and `<template>` go with their content; inline
  event handlers (`onerror=`...), `style` attributes, `<svg>`, `<base>` and comments
  are dropped;
- URLs keep only the `http`, `https`, `mailto` and `tel` schemes, so `javascript:`
  and `data:` links are removed;
- relative `href` and `src` values are made absolute against the article's URL;
- `<iframe>` survives only with an https `src` on a host in the allow-list
  (`[feed_settings] iframe_hosts`); any other iframe is removed whole;
- characters XML cannot carry (C0 and C1 controls, lone surrogates, noncharacters)
  are removed.

A `]]>` in content needs no handling here: feeds are written with escaped text,
never CDATA sections, so it becomes `]]&gt;` like any other `>`.
"""

from __future__ import annotations

import html
import re
from typing import Iterable
from urllib.parse import urljoin, urlsplit

import nh3
from lxml import etree
from lxml import html as lxml_html

ALLOWED_TAGS = frozenset(nh3.ALLOWED_TAGS | {"iframe", "picture", "source", "video", "audio"})
ALLOWED_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
ALLOWED_ATTRIBUTES["a"] = {"href", "hreflang", "title"}
ALLOWED_ATTRIBUTES["img"] = {"alt", "height", "src", "title", "width"}
ALLOWED_ATTRIBUTES["iframe"] = {"allowfullscreen", "height", "loading", "src", "title", "width"}
ALLOWED_ATTRIBUTES["video"] = {"src", "poster", "controls", "width", "height"}
ALLOWED_ATTRIBUTES["audio"] = {"src", "controls"}
ALLOWED_ATTRIBUTES["source"] = {"src", "type"}
ALLOWED_ATTRIBUTES["time"] = {"datetime"}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# Removed together with everything inside them: code, and the text of form controls and
# plugin fallbacks, which means nothing once the element itself is gone.
CLEAN_CONTENT_TAGS = frozenset({"script", "style", "object", "embed", "noscript", "template", "form",
                                "textarea", "select"})

# What XML 1.0 cannot carry (C0 controls but tab, newline and carriage return; lone
# surrogates; U+FFFE/U+FFFF), plus what it carries but HTML parsers and feed
# validators reject: DEL, C1 controls (almost always cp1252 mojibake) and noncharacters.
_NOT_XML_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
# Checked apart: a character class holding the 32 astral noncharacters makes every
# search ten times slower, and most text has no astral character at all.
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_ASTRAL_NONCHARACTERS_RE = re.compile(
    "[" + "".join(chr(plane * 0x10000 + 0xFFFE) + chr(plane * 0x10000 + 0xFFFF) for plane in range(1, 17)) + "]"
)
_WS_RE = re.compile(r"\s+")


def xml_text(text: str) -> str:
    """`text` without the characters an XML document (or an HTML parser) cannot take."""
    if _NOT_XML_RE.search(text):
        text = _NOT_XML_RE.sub("", text)
    if _ASTRAL_RE.search(text) and _ASTRAL_NONCHARACTERS_RE.search(text):
        text = _ASTRAL_NONCHARACTERS_RE.sub("", text)
    return text


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """`host` is in the allow-list; an entry ".example.com" also allows its subdomains."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def allowed_iframe_src(src: str, base_url: str, iframe_hosts: Iterable[str]) -> str | None:
    """The absolute iframe URL when it may be embedded, else None."""
    try:
        url = urljoin(base_url, src.strip())
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    if parts.scheme != "https" or not host_allowed(host, iframe_hosts):
        return None
    return url


def _drop_disallowed_iframes(fragment: str, base_url: str, iframe_hosts: tuple[str, ...]) -> str:
    """Remove each iframe (with its fallback content) whose source is not allowed.

    nh3 can only strip the `src`, which would leave an empty frame in the reader;
    this pass removes the element. It is a convenience, not the safety: whatever it
    misses, nh3 still strips the `src` of (see `_attribute_filter`).
    """
    try:
        root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return fragment
    refused = [frame for frame in root.iter("iframe")
               if allowed_iframe_src(frame.get("src") or "", base_url, iframe_hosts) is None]
    if not refused:
        return fragment
    for frame in refused:
        frame.drop_tree()
    return html.escape(root.text or "", quote=False) + "".join(
        lxml_html.tostring(child, encoding="unicode") for child in root
    )


def sanitize_html(fragment: str, base_url: str, iframe_hosts: Iterable[str] = ()) -> str:
    """The body HTML as it may be republished (see the module docstring for the rules)."""
    if not fragment:
        return ""
    hosts = tuple(iframe_hosts)
    fragment = xml_text(fragment)
    if "<iframe" in fragment.lower():
        fragment = _drop_disallowed_iframes(fragment, base_url, hosts)

    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        # Runs before relative URLs are rewritten, so resolve against the base here.
        if tag == "iframe" and attribute == "src":
            return allowed_iframe_src(value, base_url, hosts)
        return value

    cleaned = nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(CLEAN_CONTENT_TAGS),
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=set(URL_SCHEMES),
        url_relative=("rewrite_with_base", base_url),
        # Publishers want readers' clicks to carry the referrer back to them.
        link_rel=None,
        strip_comments=True,
    )
    return xml_text(cleaned)


def plain_text(fragment: str, *, blocks: bool = False) -> str:
    """Text of an HTML fragment: tags removed, entities decoded, whitespace folded.

    `blocks=True` treats every tag as a word boundary (for bodies, whose paragraphs
    must not run together); titles keep inline markup's letters together.
    """
    if not fragment:
        return ""
    fragment = xml_text(fragment)
    if "<" in fragment or "&" in fragment:
        if blocks:
            fragment = fragment.replace("<", " <")
        fragment = html.unescape(nh3.clean(fragment, tags=set(), clean_content_tags=set(CLEAN_CONTENT_TAGS)))
        fragment = xml_text(fragment)  # an entity may have decoded to a control character
    return _WS_RE.sub(" ", fragment).strip()


def excerpt(text: str, limit: int = 300) -> str:
    """At most `limit` characters of `text`, cut at a word boundary, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.-")
    return (cut or text[:limit]) + "…"
