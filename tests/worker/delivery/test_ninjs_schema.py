"""The ninjs payload against IPTC ninjs 2.0's documented fields.

The official JSON schema ships in no package we install, so this schema is written here
from the ninjs 2.0 documentation: the top-level properties it defines (no others allowed),
`uri` required, the enumerations of `type`, `representationtype` and `pubstatus`, and the
shapes of the arrays this project fills (headlines, descriptions, bodies, people, subjects,
altids, associations with renditions, standard). Dates and URIs are checked by hand, as
jsonschema checks formats only with optional packages."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft4Validator

from tests.conftest import REPO
from worker.transports.ninjs import to_ninjs

TEXT = {"type": "string"}
NUMBER = {"type": "number"}


def _objects(properties: dict, required: tuple = ()) -> dict:
    item = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        item["required"] = list(required)
    return {"type": "array", "items": item}


ROLE_VALUE = {"role": TEXT, "contenttype": TEXT, "value": TEXT}
NAMED = {"name": TEXT, "rel": TEXT, "uri": TEXT, "literal": TEXT}
RENDITION = {"name": TEXT, "href": TEXT, "contenttype": TEXT, "title": TEXT, "height": NUMBER, "width": NUMBER,
             "sizeinbytes": NUMBER, "duration": NUMBER, "format": TEXT}
DATES = ("firstcreated", "versioncreated", "contentcreated", "embargoed")

NINJS_2_0 = {
    "type": "object",
    "required": ["uri"],
    "additionalProperties": False,
    "properties": {
        "uri": TEXT, "type": {"enum": ["text", "audio", "video", "picture", "graphic", "composite", "component"]},
        "representationtype": {"enum": ["full", "partial"]}, "profile": TEXT, "version": TEXT,
        **{name: TEXT for name in DATES},
        "pubstatus": {"enum": ["usable", "withheld", "canceled"]}, "urgency": NUMBER,
        "copyrightholder": TEXT, "copyrightnotice": TEXT, "usageterms": TEXT, "ednote": TEXT, "language": TEXT,
        "descriptions": _objects(ROLE_VALUE, ("value",)),
        "bodies": _objects(dict(ROLE_VALUE, charcount=NUMBER, wordcount=NUMBER), ("value",)),
        "headlines": _objects(ROLE_VALUE, ("value",)),
        "people": _objects(NAMED), "organisations": {"type": "array"}, "places": {"type": "array"},
        "subjects": _objects(NAMED), "events": _objects(NAMED), "objects": _objects(NAMED),
        "infosources": {"type": "array"}, "title": TEXT, "by": TEXT, "slugline": TEXT, "located": TEXT,
        "renditions": _objects(RENDITION, ("name",)),
        "associations": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": TEXT, "uri": TEXT, "type": TEXT, "renditions": _objects(RENDITION, ("name",)),
            "descriptions": _objects(ROLE_VALUE, ("value",))}}},
        "altids": _objects({"role": TEXT, "value": TEXT}),
        "trustindicators": {"type": "array"},
        "standard": {"type": "object", "additionalProperties": False,
                     "properties": {"name": TEXT, "version": TEXT, "schema": TEXT}},
        "genres": _objects({"name": TEXT, "uri": TEXT, "literal": TEXT}), "rightsinfo": {"type": "object"},
    },
}

EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())
FULL = dict(EXAMPLE, version="v3", image=dict(EXAMPLE["image"], alt="The Kremlin at dusk"), truncated=True)
BARE = {"id": "web:bare", "url": "https://lnn.example/bare", "title": "Bare", "version": "v1"}


def assert_valid_ninjs(item: dict) -> None:
    errors = sorted(Draft4Validator(NINJS_2_0).iter_errors(item), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    assert urlsplit(item["uri"]).scheme, f"uri {item['uri']!r} is not absolute"
    for name in DATES:
        if name in item:
            datetime.fromisoformat(item[name].replace("Z", "+00:00"))  # RFC 3339 date-time
    for picture in item.get("associations", []):
        for rendition in picture.get("renditions", []):
            assert urlsplit(rendition["href"]).scheme in ("http", "https")


@pytest.mark.parametrize("event, data", [
    ("article.published", FULL), ("article.updated", FULL), ("article.unpublished", FULL),
    ("article.published", BARE), ("article.unpublished", BARE),
    ("article.published", dict(EXAMPLE, id="web:has spaces & ünïcode", tags=[], authors=[], image=None)),
], ids=["published", "updated", "unpublished", "bare", "bare-unpublished", "odd-id"])
def test_the_ninjs_payload_is_valid_ninjs_2_0(event, data):
    item = to_ninjs(event, data)
    assert_valid_ninjs(item)
    assert item["pubstatus"] == ("canceled" if event == "article.unpublished" else "usable")


def test_the_schema_here_catches_what_ninjs_forbids():
    # the check itself: a field ninjs does not define, a wrong enumeration value, a headline without value
    for broken in ({"uri": "urn:x", "headline": "not a ninjs field"}, {"uri": "urn:x", "pubstatus": "withdrawn"},
                   {"uri": "urn:x", "headlines": [{"role": "main"}]}, {"type": "text"}):
        assert list(Draft4Validator(NINJS_2_0).iter_errors(broken)), broken
