"""The checks every feed file must pass, as assertion helpers.

- RSS and Atom parse with feedparser without `bozo`.
- Atom validates against the RFC 4287 RELAX NG schema (tests/fixtures/schemas/atom.rng).
- JSON Feed validates against tests/fixtures/schemas/jsonfeed-1.1.json, which refers to
  jsonfeed-1.json by the id `feed-1` (resolved through a `referencing` registry).
- The W3C Feed Validation Service's error rules that apply to what we write (read
  from its source, since the service cannot be reached from here): RFC 822 dates
  with the right weekday, RFC 3339 / W3C-DTF dates, URIs made only of RFC 2396
  characters, tag: ids in RFC 4151 form, unique guids / ids, a self link matching the
  file's public URL, enclosure url + length >= 0 + MIME type, descriptions before
  content:encoded, language codes, non-blank titles and categories, Media RSS
  attributes; and for the embedded HTML, what its HTML check looks at: it parses
  (html5lib in strict mode), holds no relative link or image, and nothing its
  security check flags (scripts, event handlers, styles, javascript: URLs).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

import feedparser
import html5lib
import jsonschema
import referencing
from lxml import etree
from referencing.jsonschema import DRAFT4

from tests.conftest import FIXTURES

SCHEMAS = FIXTURES / "schemas"
ATOM_NS = "http://www.w3.org/2005/Atom"
A = "{%s}" % ATOM_NS
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
MEDIA = "{http://search.yahoo.com/mrss/}"

# From the W3C validator (validators.py): what a full URI, a tag URI, a date and a MIME type must look like.
RFC2396_FULL = re.compile(r"[a-zA-Z][0-9a-zA-Z+\-.]*:(//)?[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,#]+$")
TAG_URI = re.compile(r"^tag:([a-z0-9\-._]+?@)?[a-z0-9.\-]+?,\d{4}(-\d{2}(-\d{2})?)?:"
                     r"[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*(#[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*)?$")
RFC2822 = re.compile(r"(((Mon)|(Tue)|(Wed)|(Thu)|(Fri)|(Sat)|(Sun)), )?\d\d? ((Jan)|(Feb)|(Mar)|(Apr)|(May)|(Jun)|"
                     r"(Jul)|(Aug)|(Sep)|(Oct)|(Nov)|(Dec)) \d\d\d\d \d\d:\d\d(:\d\d)? (([+-]?\d\d[03]0)|(UT)|(GMT)|Z)$")
RFC3339 = re.compile(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*)?(Z|([+-]\d\d:\d\d))$")
MIME = re.compile(r'[^\s()<>,;:\\"/[\]?=]+/[^\s()<>,;:\\"/[\]?=]+(\s*;\s*[^\s()<>,;:\\"/[\]?=]+=("(\\"|[^"])*"|'
                  r'[^\s()<>,;:\\"/[\]?=]+))*$')
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$", re.I)


@lru_cache(maxsize=1)
def atom_schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMAS / "atom.rng")))


@lru_cache(maxsize=1)
def json_feed_validator() -> jsonschema.Draft4Validator:
    feed_1 = referencing.Resource.from_contents(json.loads((SCHEMAS / "jsonfeed-1.json").read_text()),
                                                default_specification=DRAFT4)
    # jsonfeed-1.1.json says "$ref": "feed-1#/...", relative to its own id; the
    # resource is registered under the URI that resolves to (its own id).
    registry = referencing.Registry().with_resource(feed_1.id(), feed_1)
    schema = json.loads((SCHEMAS / "jsonfeed-1.1.json").read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


def assert_uri(value: str, where: str) -> None:
    assert value and RFC2396_FULL.match(value), f"{where}: {value!r} is not a full URI of RFC 2396 characters"


def assert_html_safe(fragment: str, where: str) -> None:
    """What the W3C validator's HTML check reports, and what a republished body must not hold."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    try:
        tree = parser.parseFragment(fragment)
    except html5lib.html5parser.ParseError as exc:
        raise AssertionError(f"{where}: not well-formed HTML ({exc}): {fragment[:300]!r}") from None
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.lower()
        assert tag not in {"script", "style", "object", "embed", "form", "input", "base", "meta", "link", "svg",
                           "math"}, f"{where}: <{tag}> left in content"
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), f"{where}: event handler {name} on <{tag}>"
            assert name.lower() != "style", f"{where}: style attribute on <{tag}>"
            if name in ("href", "src"):
                assert re.match(r"^(https?|mailto|tel):", value), \
                    f"{where}: <{tag} {name}={value!r}> is relative or has a disallowed scheme"


def _rfc822(value: str, where: str) -> datetime:
    assert RFC2822.match(value), f"{where}: {value!r} is not an RFC 822 date"
    parsed = parsedate_to_datetime(value)
    assert parsed.strftime("%a") == value[:3], f"{where}: {value!r} has the wrong day of the week"
    return parsed


def assert_valid_rss(data: bytes, self_url: str) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(data)
    assert not parsed.bozo, f"RSS is bozo: {parsed.get('bozo_exception')!r}"
    root = etree.fromstring(data)
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    for required in ("title", "link", "description"):
        assert (channel.findtext(required) or "").strip(), f"channel has no {required}"
    assert_uri(channel.findtext("link"), "channel link")
    selfs = [link.get("href") for link in channel.findall(f"{A}link") if link.get("rel") == "self"]
    assert selfs == [self_url], f"rel=self is {selfs}, expected [{self_url!r}]"
    for link in channel.findall(f"{A}link"):
        assert_uri(link.get("href"), f"atom:link rel={link.get('rel')}")
    assert LANGUAGE.match(channel.findtext("language") or ""), "channel language"
    if channel.find("lastBuildDate") is not None:
        _rfc822(channel.findtext("lastBuildDate"), "lastBuildDate")
    guids = []
    for item in channel.findall("item"):
        where = f"item {item.findtext('guid')!r}"
        assert (item.findtext("title") or "").strip(), f"{where}: blank title"
        assert_uri(item.findtext("link"), f"{where} link")
        guid = item.find("guid")
        assert guid is not None and guid.text, f"{where}: no guid"
        permalink = guid.get("isPermaLink", "true")
        assert permalink in ("true", "false")
        if permalink == "true":
            assert guid.text == item.findtext("link"), f"{where}: isPermaLink=true but the guid is not the link"
        else:
            assert TAG_URI.match(guid.text), f"{where}: {guid.text!r} is not a valid tag URI"
        guids.append(guid.text)
        _rfc822(item.findtext("pubDate"), f"{where} pubDate")
        modified = item.findtext("{http://purl.org/dc/terms/}modified")
        assert modified and RFC3339.match(modified), f"{where}: dcterms:modified {modified!r}"
        children = [child.tag for child in item]
        if CONTENT_ENCODED in children:
            assert "description" in children[:children.index(CONTENT_ENCODED)], \
                f"{where}: content:encoded before description"
            assert_html_safe(item.findtext(CONTENT_ENCODED), f"{where} content:encoded")
        assert_html_safe(item.findtext("description") or "", f"{where} description")
        for category in item.findall("category"):
            assert (category.text or "").strip(), f"{where}: blank category"
        assert all((c.text or "").strip() for c in item.findall("{http://purl.org/dc/elements/1.1/}creator"))
        assert item.find("author") is None, f"{where}: RSS <author> must be an email; names go in dc:creator"
        enclosures = item.findall("enclosure")
        assert len(enclosures) <= 1
        for enclosure in enclosures:
            assert_uri(enclosure.get("url"), f"{where} enclosure")
            assert int(enclosure.get("length")) >= 0, f"{where}: enclosure length"
            assert MIME.match(enclosure.get("type") or ""), f"{where}: enclosure type"
        _check_media(item, where)
    assert len(guids) == len(set(guids)), "duplicate guids"
    return parsed


def _check_media(parent, where: str) -> None:
    for media in parent.findall(f"{MEDIA}content"):
        assert_uri(media.get("url"), f"{where} media:content")
        assert media.get("medium") in (None, "image", "audio", "video", "document", "executable")
        for dimension in ("width", "height"):
            if media.get(dimension) is not None:
                assert int(media.get(dimension)) > 0, f"{where}: media:content {dimension}"
        if media.get("type") is not None:
            assert MIME.match(media.get("type"))
        for description in media.findall(f"{MEDIA}description"):
            assert description.get("type") in (None, "plain", "html")


def assert_valid_atom(data: bytes, self_url: str) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(data)
    assert not parsed.bozo, f"Atom is bozo: {parsed.get('bozo_exception')!r}"
    document = etree.fromstring(data)
    schema = atom_schema()
    assert schema.validate(document), f"RELAX NG: {schema.error_log}"
    feed_has_author = document.find(f"{A}author/{A}name") is not None
    selfs = [link.get("href") for link in document.findall(f"{A}link") if link.get("rel") == "self"]
    assert selfs == [self_url], f"rel=self is {selfs}, expected [{self_url!r}]"
    for link in document.findall(f"{A}link"):
        assert_uri(link.get("href"), f"feed link rel={link.get('rel')}")
    assert RFC3339.match(document.findtext(f"{A}updated"))
    ids = []
    for entry in document.findall(f"{A}entry"):
        entry_id = entry.findtext(f"{A}id")
        where = f"entry {entry_id!r}"
        assert TAG_URI.match(entry_id), f"{where}: not a valid tag URI"
        ids.append(entry_id)
        assert feed_has_author or entry.find(f"{A}author/{A}name") is not None, f"{where}: no author"
        for stamp in ("published", "updated"):
            assert RFC3339.match(entry.findtext(f"{A}{stamp}") or ""), f"{where}: {stamp}"
        alternates = [link for link in entry.findall(f"{A}link") if link.get("rel", "alternate") == "alternate"]
        assert len(alternates) == 1 and alternates[0].get("type") == "text/html", f"{where}: alternate link"
        for link in entry.findall(f"{A}link"):
            assert_uri(link.get("href"), f"{where} link rel={link.get('rel')}")
        content = entry.find(f"{A}content")
        if content is not None:
            assert content.get("type") == "html", f"{where}: content type {content.get('type')!r}"
            assert_html_safe(content.text or "", f"{where} content")
        title = entry.find(f"{A}title")
        assert title.get("type") == "text" and (title.text or "").strip(), f"{where}: title"
        _check_media(entry, where)
    assert len(ids) == len(set(ids)), "duplicate entry ids"
    return parsed


def assert_valid_json_feed(data: bytes, self_url: str) -> dict:
    feed = json.loads(data)
    errors = sorted(json_feed_validator().iter_errors(feed), key=lambda e: list(e.path))
    assert not errors, "JSON Feed schema: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == self_url
    ids = [item["id"] for item in feed["items"]]
    assert len(ids) == len(set(ids)), "duplicate item ids"
    for item in feed["items"]:
        assert_uri(item["url"], f"item {item['id']} url")
        assert_html_safe(item.get("content_html", ""), f"item {item['id']} content_html")
        for stamp in ("date_published", "date_modified"):
            assert RFC3339.match(item[stamp]), f"item {item['id']}: {stamp}"
    return feed


def assert_valid_feed_files(files: dict[str, bytes], feeds_url: str, name: str) -> dict:
    """Validate `{name}.rss`, `.atom` and `.json`; return the parsed documents."""
    base = feeds_url.rstrip("/")
    return {
        "rss": assert_valid_rss(files[f"{name}.rss"], f"{base}/{name}.rss"),
        "atom": assert_valid_atom(files[f"{name}.atom"], f"{base}/{name}.atom"),
        "json": assert_valid_json_feed(files[f"{name}.json"], f"{base}/{name}.json"),
    }
