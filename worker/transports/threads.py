"""Threads posts through the Threads API (graph.threads.net), in its two steps.

1. `POST /{user-id}/threads` (media_type=TEXT, text, link_attachment = the story's URL)
   makes a media *container*; its id is saved on the row at once.
2. `POST /{user-id}/threads_publish` with `creation_id` publishes it and answers the
   post's media id. Before this step the row records that publishing began.

A retry never makes a second post: it goes on with the saved container. If publishing had
begun, it first asks the container's status: PUBLISHED (the answer was lost) → the post is
looked up among the account's recent posts by its text; FINISHED → published now;
IN_PROGRESS → later; EXPIRED or ERROR (never published) → a new container. A container
made whose answer was lost is never published and expires on its own after 24 hours.

Text: at most 500 characters, and Threads counts an emoji as its UTF-8 bytes (👍🏽 = 8,
a family ZWJ sequence up to 25), other characters one each; `threads_length` counts that
way (UTF-16 units for the rest, which never undercounts).
Threads posts cannot be edited through the API; a withdrawn story deletes the post
(`DELETE /{media-id}`, permission threads_delete, at most 100 deletions a day).
The token goes in the Authorization header, never in a URL.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import regex

from worker.transports.base import UNPUBLISHED, Outcome, Post, Transport
from worker.transports.http import RequestFailed, Response
from worker.transports.text import compose

TEXT_LIMIT = 500
# Graph error codes: throttling and temporary trouble (retried); the token or the app's
# permissions (the channel is disabled until someone fixes them); anything else is final.
RETRIED_CODES = {1, 2, 4, 17, 32, 341, 613}
NOT_FOUND_CODES = {24, 100}
# Posts listed since the publish began (less this, for clock skew) are searched after a lost answer.
LOOKUP_SKEW = 300
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")
_GRAPHEME = regex.compile(r"\X")


def threads_length(text: str) -> int:
    """Threads' count: an emoji (a grapheme with a pictograph, flag or keycap) is its UTF-8
    bytes; any other grapheme its UTF-16 units."""
    total = 0
    for g in _GRAPHEME.findall(text):
        total += len(g.encode()) if _EMOJI.search(g) else len(g.encode("utf-16-le")) // 2
    return total


def graph_error(resp: Response) -> dict:
    data = resp.json()
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


class ThreadsTransport(Transport):
    type = "threads"
    follows_edits = False

    def prepare(self, dest, event_type: str, data: dict) -> dict:
        if event_type == UNPUBLISHED:
            return {"url": data.get("url")}
        fitted = compose(dest.template, data, limit=TEXT_LIMIT, length=threads_length, with_hashtags=dest.hashtags)
        return {"text": fitted.text, "url": data.get("url")}

    # --- requests -----------------------------------------------------------------

    def _call(self, dest, method: str, path: str, *, form: dict | None = None, query: dict | None = None):
        url = dest.api_base + path + (f"?{urlencode(query)}" if query else "")
        try:
            return self.http.request(method, url, timeout=dest.timeout, allow_private=dest.allow_private,
                                     headers={"authorization": f"Bearer {dest.token}"}, form=form)
        except RequestFailed as exc:
            return exc.outcome()

    @staticmethod
    def _refusal(resp: Response, **extra) -> Outcome:
        """A Graph error as an Outcome the engine reads correctly; `extra` overrides."""
        err = graph_error(resp)
        if not err:
            return resp.outcome(**extra)  # no Graph error (a proxy's 502, a bare 429): read by status
        code, message = err.get("code"), str(err.get("message") or resp.text[:300])
        described = f"{message} (code {code}" + (f", subcode {err['error_subcode']})" if err.get("error_subcode")
                                                 else ")")
        values: dict = {"error": described}
        if code in RETRIED_CODES or err.get("is_transient") is True:
            values["retryable"] = True
        elif code == 190:
            values["disable"] = ("Threads refused the access token (expired or revoked; long-lived tokens last "
                                 "60 days unless refreshed): " + described)
        elif code == 10 or (isinstance(code, int) and 200 <= code <= 299):
            values["disable"] = ("Threads refused a permission (the token needs threads_basic, "
                                 "threads_content_publish and threads_delete): " + described)
        else:
            values["retryable"] = False
        values.update(extra)
        return resp.outcome(**values)

    # --- publishing ---------------------------------------------------------------

    def send(self, dest, post: Post) -> Outcome:
        msg = post.prepared
        if post.remote.get("id"):
            return Outcome.skip("already posted", remote=self._remote(post.remote))
        container = post.remote.get("container_id")
        if container and post.remote.get("publish_started"):
            status = self._container_status(dest, container)
            if isinstance(status, Outcome):
                return status
            if status == "PUBLISHED":
                return self._recover(dest, post)
            if status == "IN_PROGRESS":
                return Outcome(retryable=True, error_class="not_ready",
                               error=f"Threads is still processing container {container}")
            if status in ("EXPIRED", "ERROR", None):
                container = None  # never published; start again with a new container
        if not container:
            resp = self._call(dest, "POST", f"/{dest.user_id}/threads",
                              form={"media_type": "TEXT", "text": msg["text"], "link_attachment": msg["url"]})
            if isinstance(resp, Outcome):
                return resp
            if not resp.ok:
                return self._refusal(resp)
            container = (resp.json() or {}).get("id")
            if not container:
                return resp.outcome(retryable=False, error="Threads answered without a container id")
            post.save(container_id=str(container), publish_started=None)
        return self._publish(dest, post, str(container))

    def _publish(self, dest, post: Post, container: str) -> Outcome:
        post.save(publish_started=int(time.time()))
        resp = self._call(dest, "POST", f"/{dest.user_id}/threads_publish", form={"creation_id": container})
        if isinstance(resp, Outcome):
            return resp
        if not resp.ok:
            if graph_error(resp).get("code") in NOT_FOUND_CODES | {10}:
                # Threads may refuse a container it has in fact published (or not finished yet):
                # its status tells which.
                status = self._container_status(dest, container)
                if isinstance(status, Outcome):
                    # Whether it was published is unknown: the next attempt asks again.
                    return self._refusal(resp, retryable=True, disable=None)
                if status == "PUBLISHED":
                    return self._recover(dest, post)
                if status in ("IN_PROGRESS", "FINISHED"):
                    return self._refusal(resp, retryable=True)
                if status in ("EXPIRED", "ERROR", None):
                    # Never published and never will be: the next attempt makes a new container.
                    post.save(container_id=None, publish_started=None)
                    return self._refusal(resp, retryable=True)
            return self._refusal(resp)
        media = (resp.json() or {}).get("id")
        if not media:
            return resp.outcome(retryable=True, error="Threads answered without the post's id")
        post.save(id=str(media))
        return self._published(dest, post, resp)

    def _published(self, dest, post: Post, resp: Response | None) -> Outcome:
        permalink = self._permalink(dest, post.remote["id"])
        if permalink:
            post.save(url=permalink)
        remote = self._remote(post.remote)
        if resp is None:
            return Outcome(status_code=200, remote=remote,
                           body="found the post an earlier attempt published (its answer was lost)")
        return resp.outcome(remote=remote)

    @staticmethod
    def _remote(saved: dict) -> dict:
        remote = {"id": saved["id"], "container_id": saved.get("container_id")}
        if saved.get("url"):
            remote["url"] = saved["url"]
        return remote

    def _container_status(self, dest, container: str):
        """The container's status, None if Threads no longer knows it, or an Outcome when
        Threads could not be asked."""
        resp = self._call(dest, "GET", f"/{container}", query={"fields": "id,status,error_message"})
        if isinstance(resp, Outcome):
            return resp
        if not resp.ok:
            if graph_error(resp).get("code") in NOT_FOUND_CODES:
                return None
            return self._refusal(resp)
        return (resp.json() or {}).get("status")

    def _permalink(self, dest, media: str) -> str | None:
        resp = self._call(dest, "GET", f"/{media}", query={"fields": "permalink"})
        if isinstance(resp, Outcome) or not resp.ok:
            return None
        link = (resp.json() or {}).get("permalink")
        return link if isinstance(link, str) and link.startswith("https://") else None

    def _recover(self, dest, post: Post) -> Outcome:
        """The media id of the container Threads published while we were not listening,
        found among the account's posts since, by its text."""
        since = int(post.remote.get("publish_started") or time.time()) - LOOKUP_SKEW
        resp = self._call(dest, "GET", f"/{dest.user_id}/threads",
                          query={"fields": "id,text,permalink,timestamp", "since": since, "limit": 25})
        if isinstance(resp, Outcome):
            return resp
        if not resp.ok:
            return self._refusal(resp)
        matches = [p for p in (resp.json() or {}).get("data") or [] if p.get("text") == post.prepared["text"]]
        if not matches:
            # Published but not listed yet: look again later; never publish again.
            return Outcome(retryable=True, error_class="not_listed_yet",
                           error="Threads published the container but does not list the post yet")
        found = matches[-1]  # the oldest: newest come first
        post.save(id=str(found["id"]))
        if isinstance(found.get("permalink"), str):
            post.save(url=found["permalink"])
            return Outcome(status_code=200, remote=self._remote(post.remote),
                           body="found the post an earlier attempt published (its answer was lost)")
        return self._published(dest, post, None)

    # --- withdrawing --------------------------------------------------------------

    def delete(self, dest, post: Post) -> Outcome:
        media = post.previous["id"]
        resp = self._call(dest, "DELETE", f"/{media}")
        if isinstance(resp, Outcome):
            return resp
        if not resp.ok:
            if graph_error(resp).get("code") in NOT_FOUND_CODES:
                return Outcome.skip("the Threads post was already gone", status_code=resp.status)
            return self._refusal(resp)
        return resp.outcome(remote={"id": media, "deleted": True})
