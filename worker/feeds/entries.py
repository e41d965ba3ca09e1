"""Each entry's RSS item, Atom entry and JSON Feed item, written as text.

An entry's XML is written with string formatting, not by building an lxml tree and
printing it: on a cold build (every entry new) building and printing 200 small trees
was half the time. The bytes are exactly what lxml printed at that depth of the
pretty-printed document (`worker.feeds.render` splices them into a head that lxml
still prints; tests/worker/feeds/test_bytes.py holds the bytes of before and
test_render.py re-prints whole documents with lxml), which is why the escaping
follows libxml2's serializer to the character:

- text: `&`, `<`, `>` and carriage return (`&#13;`, or a parser would read it as a
  line break) are escaped; everything else is written as UTF-8;
- attribute values: the same, plus `"`, tab and newline (an attribute value's
  whitespace would otherwise be normalized to spaces when read back);
- characters XML 1.0 cannot carry at all are removed (lxml refused them; entry
  strings are already cleaned by `worker.sanitize.xml_text`, so this never fires for
  prepared entries, but a writer of XML must not be the one to produce a broken file).

The numbered traps are feedgen's, listed in `worker.feeds.render`.
"""

from __future__ import annotations

import html
import json
import re
from xml.sax.saxutils import escape

from worker.feeds.items import UNKNOWN_IMAGE_TYPE, Entry, rfc822, rfc3339

# RSS 2.0 requires a length on an enclosure, in bytes. The store knows the image's
# URL, type and pixel size but not its byte size, and fetching every image to learn
# it would put the CDN in the build path. The RSS Advisory Board's profile says a
# publisher that cannot determine the size uses 0, and the W3C validator accepts 0
# (it rejects only negative values, and -1 with "use zero for unknown").
UNKNOWN_ENCLOSURE_LENGTH = "0"

# What XML 1.0 cannot carry: C0 controls but tab, newline and carriage return, lone
# surrogates, U+FFFE and U+FFFF (exactly what lxml refuses to write).
_NOT_XML_1_0_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_chars(value: str) -> str:
    return _NOT_XML_1_0_RE.sub("", value) if _NOT_XML_1_0_RE.search(value) else value


# libxml2 escapes a carriage return everywhere (a parser would read it as a line
# break), and tab and newline in attribute values (they would be read back as spaces).
_TEXT_ENTITIES = {"\r": "&#13;"}
_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}


def xml_escape_text(value: str) -> str:
    """`value` as XML character data, escaped as libxml2 escapes it."""
    return escape(_xml_chars(value), _TEXT_ENTITIES)


def xml_escape_attribute(value: str) -> str:
    """`value` as a double-quoted XML attribute value, escaped as libxml2 escapes it."""
    return escape(_xml_chars(value), _ATTRIBUTE_ENTITIES)


_text = xml_escape_text
_attr = xml_escape_attribute


def _media_content(entry: Entry, indent: str) -> str:
    """Media RSS `media:content` for the entry's image, with the alt text as its description."""
    image = entry.image
    attrs = f'url="{_attr(image.url)}" medium="image"'
    if image.mime_type != UNKNOWN_IMAGE_TYPE:
        attrs += f' type="{_attr(image.mime_type)}"'
    if image.width:
        attrs += f' width="{image.width}"'
    if image.height:
        attrs += f' height="{image.height}"'
    if not image.alt:
        return f"{indent}<media:content {attrs}/>\n"
    return (f"{indent}<media:content {attrs}>\n"
            f'{indent}  <media:description type="plain">{_text(image.alt)}</media:description>\n'
            f"{indent}</media:content>\n")


def _escaped_body(entry: Entry) -> str:
    # The body is most of an entry's text and both XML formats carry it escaped the same
    # way: escaped once per entry, kept with its fragments.
    body = entry.fragments.get("xml-body")
    if body is None:
        body = entry.fragments.setdefault("xml-body", _text(entry.content_html))
    return body


def rss_item(entry: Entry) -> bytes:
    """The `<item>`, indented for its place in `<rss><channel>`."""
    lines = [
        "    <item>\n",
        f"      <title>{_text(entry.title)}</title>\n",
        f"      <link>{_text(entry.link)}</link>\n",
        # RSS descriptions are HTML: the plain-text summary is escaped once more for it.
        # Before content:encoded, as the RSS profile asks.
        f"      <description>{_text(html.escape(entry.description, quote=False))}</description>\n",
    ]
    if entry.content_html:  # trap 1: escaped text, no CDATA
        lines.append(f"      <content:encoded>{_escaped_body(entry)}</content:encoded>\n")
    lines += [f"      <dc:creator>{_text(author)}</dc:creator>\n" for author in entry.authors]  # trap 5
    lines += [f"      <category>{_text(category)}</category>\n" for category in entry.categories]
    lines += [
        f'      <guid isPermaLink="false">{_text(entry.id)}</guid>\n',  # a tag URI, not the URL
        f"      <pubDate>{rfc822(entry.published)}</pubDate>\n",
        f"      <dcterms:modified>{rfc3339(entry.updated)}</dcterms:modified>\n",
    ]
    if entry.image is not None:
        lines.append(f'      <enclosure url="{_attr(entry.image.url)}" length="{UNKNOWN_ENCLOSURE_LENGTH}" '
                     f'type="{_attr(entry.image.mime_type)}"/>\n')
        lines.append(_media_content(entry, "      "))
    lines.append("    </item>\n")
    return "".join(lines).encode("utf-8")


def atom_entry(entry: Entry, feed_language: str) -> bytes:
    """The `<entry>`, indented for its place in `<feed>`; `xml:lang` only where it differs from the feed's."""
    lang = f' xml:lang="{_attr(entry.language)}"' if entry.language and entry.language != feed_language else ""
    lines = [
        f"  <entry{lang}>\n",
        f"    <id>{_text(entry.id)}</id>\n",
        f'    <title type="text">{_text(entry.title)}</title>\n',
        f'    <link rel="alternate" type="text/html" href="{_attr(entry.link)}"/>\n',  # trap 2
        f"    <published>{rfc3339(entry.published)}</published>\n",
        f"    <updated>{rfc3339(entry.updated)}</updated>\n",
    ]
    lines += [f"    <author>\n      <name>{_text(name)}</name>\n    </author>\n" for name in entry.authors]
    lines += [f'    <category term="{_attr(category)}"/>\n' for category in entry.categories]
    if entry.description:
        lines.append(f'    <summary type="text">{_text(entry.description)}</summary>\n')
    if entry.content_html:  # trap 1
        lines.append(f'    <content type="html">{_escaped_body(entry)}</content>\n')
    if entry.image is not None:
        # Atom's length is optional: left out rather than invented.
        lines.append(f'    <link rel="enclosure" type="{_attr(entry.image.mime_type)}" '
                     f'href="{_attr(entry.image.url)}"/>\n')
        lines.append(_media_content(entry, "    "))
    lines.append("  </entry>\n")
    return "".join(lines).encode("utf-8")


# Compact: json's C encoder only runs without indent, and feeds are read by machines.
# One encoder for every call (`json.dumps` with options builds a new one each time).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_text(value) -> str:
    return _JSON.encode(value)


def json_item(entry: Entry) -> bytes:
    item: dict = {"id": entry.id, "url": entry.link, "title": entry.title}
    if entry.description:
        item["summary"] = entry.description
    item["content_html"] = entry.content_html
    if entry.image is not None:
        item["image"] = entry.image.url
    item["date_published"] = rfc3339(entry.published)
    item["date_modified"] = rfc3339(entry.updated)
    if entry.authors:
        item["authors"] = [{"name": name} for name in entry.authors]
    if entry.categories:
        item["tags"] = list(entry.categories)
    if entry.language:
        item["language"] = entry.language
    return json_text(item).encode("utf-8")
