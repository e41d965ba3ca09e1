"""The article as IPTC ninjs 2.0 (News in JSON), for partners with `payload = "ninjs"`.

ninjs 2.x names every property (no patternProperties): headlines, descriptions and
bodies are arrays of {role, contenttype, value}; renditions and associations are
arrays with a `name`. A withdrawal is the same object with `pubstatus: "canceled"`.
"""

from __future__ import annotations

from urllib.parse import quote

NINJS_VERSION = "2.0"
NINJS_SCHEMA = "http://www.iptc.org/std/ninjs/ninjs-schema_2.0.json"


def ninjs_uri(article_id: str) -> str:
    # The id is stable across versions (the web URL may change), so it is the ninjs uri.
    return "urn:syndicate:article:" + quote(article_id, safe=":")


def to_ninjs(event_type: str, data: dict) -> dict:
    """The ninjs object for one event's data (the project's article JSON)."""
    item: dict = {
        "uri": ninjs_uri(data["id"]),
        "standard": {"name": "ninjs", "version": NINJS_VERSION, "schema": NINJS_SCHEMA},
        "type": "text",
        "representationtype": "full",
        "version": data.get("version") or "",
        "pubstatus": "canceled" if event_type == "article.unpublished" else "usable",
        "altids": [{"role": "id", "value": data["id"]}, {"role": "url", "value": data.get("url") or ""}],
    }
    if data.get("updated_at"):
        item["versioncreated"] = data["updated_at"]
    if event_type == "article.unpublished":
        item["representationtype"] = "partial"
        return item
    if data.get("published_at"):
        item["firstcreated"] = data["published_at"]
        item["contentcreated"] = data["published_at"]
    if data.get("language"):
        item["language"] = data["language"]
    if data.get("title"):
        item["headlines"] = [{"role": "main", "contenttype": "text/plain", "value": data["title"]}]
    if data.get("summary"):
        item["descriptions"] = [{"role": "summary", "contenttype": "text/plain", "value": data["summary"]}]
    if data.get("content_html"):
        item["bodies"] = [{"role": "main", "contenttype": "text/html", "value": data["content_html"]}]
    if data.get("authors"):
        item["by"] = ", ".join(data["authors"])
        item["people"] = [{"name": name, "rel": "author"} for name in data["authors"]]
    subjects = []
    if data.get("section"):
        subjects.append({"name": data["section"], "rel": "section"})
    subjects += [{"name": tag, "rel": "tag"} for tag in data.get("tags") or []]
    if subjects:
        item["subjects"] = subjects
    image = data.get("image")
    if image and image.get("url"):
        rendition = {"name": "original", "href": image["url"]}
        for key in ("width", "height"):
            if image.get(key):
                rendition[key] = image[key]
        picture = {"name": "featureimage", "uri": image["url"], "type": "picture", "renditions": [rendition]}
        if image.get("alt"):
            picture["descriptions"] = [{"role": "alt", "contenttype": "text/plain", "value": image["alt"]}]
        item["associations"] = [picture]
    if data.get("truncated"):
        item["ednote"] = "Body truncated to fit the 1 MB message limit."
    return item
