"""HTML and text that are safe to republish: applied once where articles are stored
(`worker.pipeline.events.republishable`) and again when feed entries are prepared, unless the
stored body is known to be this sanitizer's fixed point (`sanitize_to_store`).

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

`sanitize_to_store` is what storing uses: the sanitized body, and the marker to store with
it (`sanitizer_fingerprint`: these rules, this nh3, these iframe hosts) when sanitizing
that body again would change nothing. A feed given a body with its current fingerprint
uses it as it is; any other body (stored by older code, or under other rules or hosts)
is sanitized again.

`plain_text` turns an HTML fragment into text (markup removed, entities decoded once);
`text_field` only tidies text that is already text (never decodes again, so a title whose
text is `<b>` keeps it); `clean_url` parses a URL strictly and drops credentials;
`executable_markup` names what `sanitize_html` will remove that could run code, for the
note an article carries; `printable` makes any upstream value safe to put in one log line.

A `]]>` in content needs no handling here: feeds are written with escaped text,
never CDATA sections, so it becomes `]]&gt;` like any other `>`.
"""

from __future__ import annotations

import functools
import hashlib
import html
import ipaddress
import json
import re
from typing import Iterable
from urllib.parse import urljoin, urlsplit, urlunsplit

import idna
import nh3
from lxml import etree
from lxml import html as lxml_html

from worker.formatting import printable  # noqa: F401 - one log line; defined apart for the CLI

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
# The ASCII characters _NOT_XML_RE matches. A long ASCII text (`str.isascii()` costs
# nothing: the string knows) is checked for these with `in`, a memchr each: 10x faster than
# the regex over a 7 KB body; below a few hundred characters the regex is faster. An ASCII
# text cannot hold astral characters.
_NOT_XML_ASCII = tuple(chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_MEMCHR_FROM = 256


def _ascii_unsafe(text: str) -> bool:
    if len(text) < _MEMCHR_FROM:
        return _NOT_XML_RE.search(text) is not None
    return any(c in text for c in _NOT_XML_ASCII)


def xml_text(text: str) -> str:
    """`text` without the characters an XML document (or an HTML parser) cannot take."""
    if text.isascii():
        return _NOT_XML_RE.sub("", text) if _ascii_unsafe(text) else text
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
    except (etree.ParserError, ValueError, AssertionError):
        # lxml.html asserts one <body> and fails on e.g. `<html><frameset>…`: nh3 still
        # strips the frame's src below.
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


# Bump when a change to the code of `sanitize_html` changes what it writes for some input
# (the allow-lists, nh3's version and the iframe hosts are in the fingerprint on their own):
# bodies stored with an older fingerprint are then sanitized again by the feeds.
SANITIZER_REVISION = 1


@functools.lru_cache(maxsize=64)
def _fingerprint(iframe_hosts: tuple[str, ...]) -> str:
    rules = json.dumps([SANITIZER_REVISION, nh3.__version__, sorted(ALLOWED_TAGS),
                        {tag: sorted(attrs) for tag, attrs in sorted(ALLOWED_ATTRIBUTES.items())},
                        sorted(URL_SCHEMES), sorted(CLEAN_CONTENT_TAGS), sorted(set(iframe_hosts))])
    return f"r{SANITIZER_REVISION}-{hashlib.sha256(rules.encode()).hexdigest()[:32]}"


def sanitizer_fingerprint(iframe_hosts: Iterable[str]) -> str:
    """Names the rules `sanitize_html` applies with these iframe hosts (at most 40 characters)."""
    return _fingerprint(tuple(iframe_hosts))


def sanitize_to_store(fragment: str, base_url: str, iframe_hosts: Iterable[str] = ()) -> tuple[str, str | None]:
    """The body as it is stored, and its marker: `sanitizer_fingerprint(iframe_hosts)` when
    sanitizing the stored body again gives the same string, else None.

    Sanitizing is not always idempotent: html5ever re-parses some nestings the allow-list
    leaves behind (a block inside a `<p>` whose wrapper was removed, in tag soup) into a
    different tree. A body that is not its own fixed point keeps no marker, so feeds
    sanitize it again and write exactly the bytes they always wrote. A body that came in
    clean (unchanged by the first pass) is its fixed point already: one pass, as before.
    """
    hosts = tuple(iframe_hosts)
    clean = sanitize_html(fragment, base_url, hosts)
    if clean != fragment and sanitize_html(clean, base_url, hosts) != clean:
        return clean, None
    return clean, sanitizer_fingerprint(hosts)


def plain_text(fragment: str, *, blocks: bool = False) -> str:
    """Text of an HTML fragment: tags removed, entities decoded, whitespace folded.

    `blocks=True` treats every tag as a word boundary (for bodies, whose paragraphs
    must not run together); titles keep inline markup's letters together.
    """
    if not fragment:
        return ""
    # Whitespace controls (vertical tab, NEL...) separate words: fold them before the
    # characters XML cannot carry are dropped.
    fragment = xml_text(_WS_RE.sub(" ", fragment))
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


# --- text fields ------------------------------------------------------------------------

def has_unsafe_characters(text: str) -> bool:
    """Whether `xml_text` would remove anything (controls, lone surrogates, noncharacters)."""
    if text.isascii():
        return _ascii_unsafe(text)
    return bool(_NOT_XML_RE.search(text) or (_ASTRAL_RE.search(text) and _ASTRAL_NONCHARACTERS_RE.search(text)))


# Whitespace that folding would change: any but a single space.
_UNFOLDED_WS_RE = re.compile(r"[^\S ]|  ")


def text_field(text: str) -> str:
    """Text that already is text (a stored title, an author's name): unsafe characters
    removed and whitespace folded. Entities are NOT decoded and `<` stays `<`: decoding
    happened once, where the text came in."""
    if not _UNFOLDED_WS_RE.search(text) and not has_unsafe_characters(text):
        # Already folded and safe, as stored text almost always is: the substitutions
        # below would give it back unchanged, at several times the cost of looking.
        return text.strip()
    return _WS_RE.sub(" ", xml_text(_WS_RE.sub(" ", text))).strip()


def cut_text(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis."""
    return text if len(text) <= limit else excerpt(text, limit - 1)


# --- URLs -------------------------------------------------------------------------------

MAX_URL_CHARS = 2_048
# Characters a URL may not carry at all (percent-encoded they are fine).
_URL_FORBIDDEN_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_ASCII_HOST_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?")


def _check_host(host: str) -> None:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            raise ValueError(f"host {host!r} is not a valid IPv6 address") from None
        return
    if _ASCII_HOST_RE.fullmatch(host):
        return
    if host.isascii():
        raise ValueError(f"host {host[:80]!r} is not a valid host name")
    try:
        idna.encode(host.rstrip("."), uts46=True)
    except (idna.IDNAError, UnicodeError, ValueError):
        raise ValueError(f"host {host[:80]!r} is not a valid host name") from None


def clean_url(value: str, *, limit: int = MAX_URL_CHARS) -> tuple[str, list[str]]:
    """An absolute http(s) URL, parsed strictly, without credentials: (url, notes).

    Raises ValueError saying what is wrong (not a URL, a bad host or port, too long).
    Credentials (`https://user:pass@host/`) are removed with a note: they must never
    reach feeds or partners. Spaces in the path or query are percent-encoded, as a
    browser does."""
    notes: list[str] = []
    text = value.strip()
    if not text:
        raise ValueError("is empty")
    if m := _URL_FORBIDDEN_RE.search(text):
        raise ValueError(f"contains control character U+{ord(m.group()):04X}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an absolute http(s) URL")
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    host = hostport
    if hostport.startswith("["):
        host = hostport[:hostport.index("]") + 1] if "]" in hostport else hostport
    elif ":" in hostport:
        host = hostport.rsplit(":", 1)[0]
    if not host:
        raise ValueError("has no host")
    _check_host(host)
    if port == 0:
        raise ValueError("has an invalid port (0)")
    changed = False
    if at:
        netloc, changed = hostport, True
        notes.append("removed credentials")
    path, query, fragment = parts.path, parts.query, parts.fragment
    if " " in path + query + fragment:
        path, query, fragment = (p.replace(" ", "%20") for p in (path, query, fragment))
        changed = True
    url = urlunsplit((parts.scheme, netloc, path, query, fragment)) if changed else text
    if len(url) > limit:
        raise ValueError(f"is {len(url):,} characters; the limit is {limit:,}")
    return url, notes


# --- what the body sanitizer removes that could run code --------------------------------

_ACTIVE_ELEMENT_RE = re.compile(r"<(script|object|embed|applet|base|meta|form|svg|math)\b", re.IGNORECASE)
_HANDLER_RE = re.compile(r"<([A-Za-z][\w:-]{0,30})\b[^<>]*?\s(on[a-z]{2,30})\s*=", re.IGNORECASE)
_ACTIVE_URL_RE = re.compile(r"\s(?:href|src|action|formaction|xlink:href|poster|background)\s*=\s*[\"']?\s*"
                            r"(javascript|vbscript|data)\s*:", re.IGNORECASE)
_MAX_MARKUP_NOTES = 10
# Under IGNORECASE these also match ASCII letters of "javascript", "vbscript" and "data"
# (İ and ı match i, ſ matches s); `str.lower()` does not map them so.
_CASE_FOLDS_TO_SCHEME_LETTERS = ("\u0130", "\u0131", "\u017f")


def _may_hold_active_url(fragment: str) -> bool:
    """False only when _ACTIVE_URL_RE cannot match: it needs one of its schemes' names.
    That regex tries its alternatives at every whitespace (80 us a 7 KB body); this is 5 us."""
    if any(c in fragment for c in _CASE_FOLDS_TO_SCHEME_LETTERS):
        return True
    low = fragment.lower()
    return "javascript" in low or "vbscript" in low or "data" in low


def executable_markup(fragment: str) -> list[str]:
    """What in `fragment` could run code in a reader's browser, as short labels
    ("<script>", "<img onerror>", "javascript: URL"). Informational: the removal itself
    is `sanitize_html`'s allow-list, which does not depend on this list being complete."""
    if not fragment or "<" not in fragment:
        return []
    found: dict[str, None] = {}
    for m in _ACTIVE_ELEMENT_RE.finditer(fragment):
        found[f"<{m.group(1).lower()}>"] = None
        if len(found) >= _MAX_MARKUP_NOTES:
            return list(found)
    for m in _HANDLER_RE.finditer(fragment):
        found[f"<{m.group(1).lower()} {m.group(2).lower()}>"] = None
        if len(found) >= _MAX_MARKUP_NOTES:
            return list(found)
    for m in (_ACTIVE_URL_RE.finditer(fragment) if _may_hold_active_url(fragment) else ()):
        found[f"{m.group(1).lower()}: URL"] = None
        if len(found) >= _MAX_MARKUP_NOTES:
            break
    return list(found)
