"""WordPress REST API source (`type = "wordpress"`, `url = "https://site/wp-json/wp/v2"`).

Three passes per poll:

1. **Changes**: `/posts?orderby=modified&order=asc&modified_after=<cursor - overlap>&_embed=1`.
   WordPress reads `modified_after` strictly after, and a value without an offset in the
   *site's* timezone, so we always send an explicit `+00:00`, and start `OVERLAP` before
   the cursor. Page numbers are not trusted across a pass (a post edited or unpublished
   mid-pass shifts every later post one place, and the one at a page boundary is
   skipped): each step asks afresh for the first page after where the last one ended.
   Only the last second of a full page can continue past it (25 posts saved in one
   second); that second is then read whole with `modified_after`/`modified_before`
   ordered by id, a stable order. Posts read twice are the same id and version, which
   the store recognises, so they make no second event.
2. **Window**: the ids of posts published within `unpublish_window`. A scheduled post
   goes live without WordPress touching its modified time, so pass 1 never sees it;
   any id here the store does not know as published is fetched with `include=`.
3. **Vanished**: the ids we hold as published within `unpublish_window` that pass 2 did
   not list are asked for with `include=`; those WordPress does not return were
   unpublished, trashed or deleted.

A post that cannot become an article (no title, a broken date, a field no check foresaw)
is a rejection and the batch goes on; a page whose JSON cannot be parsed whole (one post
nested 10,000 deep) is read post by post, so only that post is rejected. Rendered HTML
(title, excerpt, term and author names, image alt) is handed to the article schema as it
is, which removes the markup and decodes entities once: `&lt;b&gt;` stays the text `<b>`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import requests

from config import SourceConfig
from worker.sources.base import (
    Batch,
    InputProblem,
    Rejection,
    Source,
    SourceContext,
    SourceError,
    bounded_body,
    build_article,
    Unreadable,
    html_to_text,
    json_items,
    parse_utc,
    unexpected,
)

log = logging.getLogger("syndicate.sources.wordpress")

# Re-read this much before the cursor: posts saved in the cursor's second, and saves
# whose database commit landed after a later post's was already visible.
OVERLAP = timedelta(seconds=30)
PAGE_SIZE = 100  # WordPress's maximum per_page
MAX_REQUESTS_PER_POLL = 1000
USER_AGENT = "syndicate/0.1 (content syndication poller)"


def wp_time(value: datetime) -> str:
    """RFC 3339 with an explicit UTC offset: WordPress reads a bare value in the site's zone."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def gmt_text(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class WordPressSource(Source):
    def __init__(self, config: SourceConfig, *, page_size: int = PAGE_SIZE, session: requests.Session | None = None):
        super().__init__(config)
        assert config.url
        self.api = config.url.rstrip("/")
        self.page_size = page_size
        self.http = session or requests.Session()
        self.http.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.authenticated = bool(config.username and config.app_password)
        if self.authenticated:
            self.http.auth = (config.username, config.app_password)
        self.requests_made = 0
        self.last_total: str | None = None
        self.context: SourceContext | None = None

    def close(self) -> None:
        self.http.close()

    def describe_cursor(self, cursor: dict) -> str:
        return f"modified_gmt={cursor.get('modified_gmt', '-')}"

    # -- the poll -------------------------------------------------------------------

    def poll(self, cursor: dict, context: SourceContext) -> Iterator[Batch]:
        self.requests_made = 0
        self.context = context
        window_start = context.now - timedelta(seconds=self.config.unpublish_window)
        since = None
        if cursor.get("modified_gmt"):
            try:
                since = parse_utc(cursor["modified_gmt"], "cursor", naive_is_utc=True)
            except InputProblem:
                log.warning("source=%s cursor %r is unreadable; reading from the window start",
                            self.name, cursor.get("modified_gmt"))
        # A new source reads one window back, not the whole archive.
        yield from self._changes(since or window_start, context)
        listed = yield from self._window(window_start, context)
        yield from self._vanished(window_start, listed, context)

    def _changes(self, since: datetime, context: SourceContext) -> Iterator[Batch]:
        # Each step is one request for the first page after `anchor`: a single answer is a
        # consistent snapshot, so an edit or unpublish elsewhere cannot shift a post past us.
        # Only the last second of a full page may continue on the next page; that second is
        # then read whole, ordered by id (a database orders equal modified times as it likes).
        anchor = since - OVERLAP
        high = since
        seen: set[tuple[Any, Any]] = set()
        while True:
            got = self._get_posts(self._changes_params(after=anchor, page=1, orderby="modified"))
            posts = got[0] if got else []
            if not posts:
                return
            total_pages = got[1] if got else None
            modified = [_modified(p) for p in posts]
            valid = [m for m in modified if m is not None]
            full = len(posts) >= self.page_size and (total_pages is None or total_pages > 1)
            if not full or not valid:
                batch = self._batch(posts, seen)
                high = max([high, *valid])
                batch.cursor = {"modified_gmt": gmt_text(high)}
                yield batch
                if full:
                    # A full page with no readable modified time cannot be stepped past.
                    raise SourceError(f"GET {self.api}/posts: a full page of posts without a valid modified_gmt")
                return
            last = max(valid)
            before = [p for p, m in zip(posts, modified) if m is None or m < last]
            batch = self._batch(before, seen)
            high = max([high, *(m for m in valid if m < last)])
            batch.cursor = {"modified_gmt": gmt_text(high)}
            yield batch
            batch = self._batch(self._whole_second(last), seen)
            high = max(high, last)
            batch.cursor = {"modified_gmt": gmt_text(high)}
            yield batch
            anchor = last

    def _changes_params(self, *, after: datetime, page: int, orderby: str, before: datetime | None = None) -> dict:
        params: dict[str, Any] = {"orderby": orderby, "order": "asc", "modified_after": wp_time(after),
                                  "per_page": self.page_size, "page": page, "_embed": 1}
        if before is not None:
            params["modified_before"] = wp_time(before)
        if self.authenticated:
            params["status"] = "any"
        return params

    def _whole_second(self, second: datetime) -> list:
        """Every post whose modified time is `second`, paged by id (a stable order)."""
        for _attempt in range(3):
            collected: list = []
            totals: set[str | None] = set()
            page, complete = 1, True
            while True:
                params = self._changes_params(after=second - timedelta(seconds=1), before=second + timedelta(seconds=1),
                                              page=page, orderby="id")
                got = self._get_posts(params)
                if got is None:
                    complete = False
                    break
                posts, total_pages = got
                totals.add(self.last_total)
                collected += posts
                if not posts or page >= (total_pages or page):
                    break
                page += 1
            if complete and len(totals) == 1:
                return collected
        raise SourceError(f"posts modified at {gmt_text(second)} kept changing while being read; "
                          "the next poll reads them again")

    def _batch(self, posts: list, seen: set) -> Batch:
        batch = Batch()
        for post in posts:
            if isinstance(post, Unreadable):
                batch.rejections.append(Rejection(post.post_id, f"the post cannot be read: {post.reason}",
                                                  where=self._where(post.post_id),
                                                  article_id=self.article_id(post.post_id) if post.post_id else None))
                continue
            if not isinstance(post, dict):
                batch.rejections.append(Rejection(None, f"expected a post object, got {type(post).__name__}",
                                                  where=self._where(None)))
                continue
            key = (repr(post.get("id"))[:100], repr(post.get("modified_gmt"))[:100])
            if key in seen:
                batch.unchanged_skipped += 1
                continue
            seen.add(key)
            self._convert(post, batch)
        return batch

    def _window(self, window_start: datetime, context: SourceContext):
        """Yields batches; returns the ids WordPress listed as public in the window."""
        listed: list[int] = []
        page = 1
        while True:
            # Ordered by id: a stable order, so paging neither repeats nor skips on ties.
            got = self._get_posts({"after": wp_time(window_start), "orderby": "id", "order": "asc",
                                   "per_page": PAGE_SIZE, "page": page, "_fields": "id"})
            if got is None:
                break
            posts, total_pages = got
            listed += [p["id"] for p in posts if isinstance(p, dict) and isinstance(p.get("id"), int)]
            if not posts or page >= (total_pages or page):
                break
            page += 1
        if not listed:
            return set()
        ids = {self.article_id(str(i)): i for i in listed}
        known = context.known(list(ids))
        rejected = context.rejected(list(ids))
        wanted = [i for aid, i in ids.items()
                  if (aid not in known or known[aid].status != "published") and aid not in rejected]
        for chunk in _chunks(wanted, PAGE_SIZE):
            got = self._get_posts({"include": ",".join(map(str, chunk)), "per_page": PAGE_SIZE, "_embed": 1})
            batch = Batch()
            for post in (got[0] if got else []):
                if isinstance(post, dict):
                    self._convert(post, batch)
            if batch.articles or batch.rejections or batch.withdrawn:
                log.info("source=%s found %d post(s) published without a new modified time (scheduled)",
                         self.name, len(batch.articles))
            yield batch
        return set(listed)

    def _vanished(self, window_start: datetime, listed: set[int], context: SourceContext) -> Iterator[Batch]:
        # Only ids the window listing did not show are asked for again, by id: the listing
        # pages by position, so a post removed meanwhile can hide another from it, and
        # nothing is withdrawn on the listing's word alone.
        held = context.published_since(window_start)
        upstream: dict[int, str] = {}
        for article_id in held:
            tail = article_id.partition(":")[2]
            if tail.isdigit() and int(tail) not in listed:
                upstream[int(tail)] = article_id
        for chunk in _chunks(sorted(upstream), PAGE_SIZE):
            got = self._get_posts({"include": ",".join(map(str, chunk)), "per_page": PAGE_SIZE, "_fields": "id"})
            if got is None:
                continue
            present = {p.get("id") for p in got[0] if isinstance(p, dict)}
            gone = [upstream[i] for i in chunk if i not in present]
            if gone:
                log.info("source=%s %d post(s) no longer public: %s", self.name, len(gone), ", ".join(gone))
            yield Batch(withdrawn=gone)

    # -- HTTP -------------------------------------------------------------------------

    def _get_posts(self, params: dict) -> tuple[list, int | None] | None:
        """One GET of /posts: (posts, X-WP-TotalPages), or None past the last page."""
        if self.requests_made >= MAX_REQUESTS_PER_POLL:
            raise SourceError(f"more than {MAX_REQUESTS_PER_POLL} requests in one poll; "
                              "stopping here and going on from the stored cursor next time")
        self.requests_made += 1
        if self.context is not None:
            self.context.heartbeat()
        url = f"{self.api}/posts"
        try:
            resp = self.http.get(url, params=params, timeout=self.config.timeout)
            self.last_total = resp.headers.get("X-WP-Total")
        except requests.Timeout:
            raise SourceError(f"GET {url} timed out after {self.config.timeout:g}s") from None
        except requests.ConnectionError as exc:
            raise SourceError(f"GET {url}: cannot connect ({_short(exc)})") from None
        except requests.RequestException as exc:
            raise SourceError(f"GET {url}: {_short(exc)}") from None
        if resp.status_code == 400 and _error_code(resp) == "rest_post_invalid_page_number":
            return None
        if resp.status_code != 200:
            raise self._http_error(url, resp)
        posts = self._posts_json(url, resp)
        if not isinstance(posts, list):
            raise SourceError(f"GET {url}: expected a JSON list of posts, got {type(posts).__name__}")
        total_pages = resp.headers.get("X-WP-TotalPages")
        return posts, int(total_pages) if total_pages and total_pages.isdigit() else None

    def _posts_json(self, url: str, resp: requests.Response) -> Any:
        try:
            return json_items(resp.content)
        except ValueError as exc:
            raise SourceError(f"GET {url}: the response is not valid JSON ({_short(exc)}; "
                              f"content-type {resp.headers.get('content-type', '?')})") from None

    def _http_error(self, url: str, resp: requests.Response) -> SourceError:
        code = _error_code(resp)
        label = f"GET {url}: HTTP {resp.status_code}" + (f" ({code})" if code else "")
        if resp.status_code in (401, 403):
            hint = ("check username and app_password (a WordPress application password)" if self.authenticated
                    else "the site refuses anonymous reads of its REST API")
            return SourceError(f"{label}: {hint}", permanent=True)
        if resp.status_code in (404, 410):
            return SourceError(f"{label}: no WordPress REST API there; check the source's url "
                               "(it ends in /wp-json/wp/v2)", permanent=True)
        if resp.status_code == 400:
            return SourceError(f"{label}: WordPress refused the query ({_message(resp)})", permanent=True)
        return SourceError(label)

    # -- a post -> an article ------------------------------------------------------------

    def _where(self, post_id: Any) -> str:
        return f"{self.api}/posts/{post_id}" if post_id is not None else f"{self.api}/posts"

    def _convert(self, post: dict, batch: Batch) -> None:
        post_id = post.get("id")
        if not isinstance(post_id, int) or isinstance(post_id, bool):
            batch.rejections.append(Rejection(str(post_id) if post_id is not None else None,
                                              f"post id {post_id!r} is not a number", where=self._where(None)))
            return
        upstream = str(post_id)
        article_id = self.article_id(upstream)
        content = post.get("content") if isinstance(post.get("content"), dict) else {}
        if post.get("status", "publish") != "publish" or content.get("protected") is True:
            # Draft, pending, private, scheduled or password-protected: not public.
            batch.withdrawn.append(article_id)
            return
        try:
            batch.articles.append(self.article(post))
        except InputProblem as exc:
            batch.rejections.append(Rejection(upstream, str(exc), where=self._where(post_id), article_id=article_id))
        except Exception as exc:  # noqa: BLE001 - one post's surprise must not stop the others
            reason = unexpected(exc, f"source={self.name} post {upstream}", log)
            batch.rejections.append(Rejection(upstream, reason, where=self._where(post_id), article_id=article_id))

    def article(self, post: dict):
        upstream = str(post["id"])
        title_html = _rendered(post, "title")
        excerpt_html = _rendered(post, "excerpt")
        body = bounded_body("content.rendered", _rendered(post, "content"))
        if not html_to_text(title_html[:10_000]):
            raise InputProblem("title.rendered is empty: a story needs a headline")
        published = parse_utc(post.get("date_gmt"), "date_gmt", naive_is_utc=True)
        modified = parse_utc(post.get("modified_gmt"), "modified_gmt", naive_is_utc=True)
        embedded = post.get("_embedded") if isinstance(post.get("_embedded"), dict) else {}
        data = {
            "id": self.article_id(upstream),
            "url": post.get("link") or "",
            "title": title_html,
            "summary": excerpt_html,
            "content_html": body,
            "authors": _authors(embedded),
            "section": _section(post, embedded),
            "tags": _terms(embedded, "post_tag"),
            "image": _image(embedded),
            "language": post.get("lang") if isinstance(post.get("lang"), str) and post.get("lang") else None,
            "published_at": published,
            "updated_at": max(modified, published),
        }
        return build_article(data, self._where(upstream))


def _modified(post: Any) -> datetime | None:
    if not isinstance(post, dict):
        return None
    try:
        return parse_utc(post.get("modified_gmt"), "modified_gmt", naive_is_utc=True)
    except InputProblem:
        return None


def _rendered(post: dict, key: str) -> str:
    value = post.get(key)
    if isinstance(value, dict):
        value = value.get("rendered")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputProblem(f"{key}.rendered is not text")
    return value


def _authors(embedded: dict) -> list[str]:
    out = []
    for author in _list(embedded.get("author")):
        # An author WordPress will not show is embedded as an error object without a name.
        if isinstance(author, dict) and isinstance(author.get("name"), str):
            out.append(author["name"])
    return out


def _all_terms(embedded: dict) -> list[dict]:
    terms = []
    for group in _list(embedded.get("wp:term")):
        if isinstance(group, list):
            terms += [t for t in group if isinstance(t, dict) and isinstance(t.get("name"), str)]
    return terms


def _terms(embedded: dict, taxonomy: str) -> list[str]:
    # Term names come HTML-escaped (News &amp; Politics): the article schema decodes them, once.
    return [t["name"] for t in _all_terms(embedded) if t.get("taxonomy") == taxonomy]


def _section(post: dict, embedded: dict) -> str | None:
    categories = [t for t in _all_terms(embedded) if t.get("taxonomy") == "category"]
    if not categories:
        return None
    order = post.get("categories")
    if isinstance(order, list) and order:
        # The post's own first category, not the first by name (how WordPress embeds them).
        for term in categories:
            if term.get("id") == order[0]:
                return term["name"]
    return categories[0]["name"]


def _image(embedded: dict) -> dict | None:
    media = embedded.get("wp:featuredmedia") or []
    if not isinstance(media, list) or not media or not isinstance(media[0], dict) or not media[0].get("source_url"):
        return None
    item = media[0]
    if item.get("media_type", "image") != "image":
        return None
    details = item.get("media_details") if isinstance(item.get("media_details"), dict) else {}

    def dimension(key: str) -> int | None:
        value = details.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    # alt_text is given to the article schema as it is: it drops an alt that is not text.
    return {"url": item["source_url"], "alt": item.get("alt_text"),
            "width": dimension("width"), "height": dimension("height")}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _error_code(resp: requests.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) and isinstance(body.get("code"), str) else None


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("message"))[:200]
    except (ValueError, AttributeError):
        return resp.text[:200]


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
