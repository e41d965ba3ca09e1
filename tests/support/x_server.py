"""Stand-in X API v2: what `POST /2/tweets`, `DELETE /2/tweets/:id`, `GET /2/users/me` and
`GET /2/users/:id/tweets` check and answer.

- Every request must carry a valid OAuth 1.0a signature (user context), verified with
  oauthlib's server side (`ResourceEndpoint` and a `RequestValidator` knowing the one app
  and the one user token): wrong keys or secrets, a bad signature, a stale timestamp or a
  reused nonce → 401 as X answers.
- A post's text is counted as X counts it (`twitter_text`, weighted): over 280 → 400
  with X's "too long" message; a text the account already posted → 403 "duplicate content".
- `rate_limit(reset_in)` plans a 429 with `x-rate-limit-*` headers; `timeline_access`
  False makes the timeline lookup answer 403 as X does for a Free-tier app.
- The base's faults apply (`lose_answer("POST /2/tweets")` posts, then drops the answer).
"""

from __future__ import annotations

import html
import itertools
import threading
import time
from urllib.parse import urlencode

from oauthlib.oauth1 import RequestValidator, ResourceEndpoint
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA1
from twitter_text import extract_urls_with_indices, parse_tweet

from tests.support.http import Refuse, Reply, Request, StandIn

CONSUMER_KEY = "xvz1evFS4wEEPTGEFPHBog7Kq"
CONSUMER_SECRET = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw9xKz0Qp"
ACCESS_TOKEN = "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"
ACCESS_TOKEN_SECRET = "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE0aQz"
USER_ID = "370773112"
USERNAME = "thedailypaper"

LIMIT = 280
DUPLICATE = {"detail": "You are not allowed to create a Tweet with duplicate content.",
             "type": "about:blank", "title": "Forbidden", "status": 403}
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
NOT_ENROLLED = {
    "client_id": "29360093", "reason": "client-not-enrolled", "title": "Client Forbidden",
    "type": "https://api.twitter.com/2/problems/client-forbidden", "required_enrollment": "Appropriate Level of API Access",
    "registration_url": "https://developer.x.com/en/portal/product",
    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a "
              "Twitter developer App that is attached to a Project. You can create a project via the developer portal.",
}
TOO_LONG = "Your Tweet text is too long. For more information on how Twitter determines text length see " \
           "https://github.com/twitter/twitter-text."


def invalid_request(message: str, parameter: str = "text") -> dict:
    return {"errors": [{"parameters": {parameter: []}, "message": message}], "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request"}


class _Validator(RequestValidator):
    """The server side of OAuth 1.0a for one app and one user token."""

    enforce_ssl = False  # the stand-in listens on plain HTTP
    allowed_signature_methods = (SIGNATURE_HMAC_SHA1,)
    safe_characters = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
    client_key_length = (20, 30)
    access_token_length = (20, 60)
    nonce_length = (16, 64)

    def __init__(self, standin: "XStandIn"):
        super().__init__()
        self.standin = standin
        self.nonces: set[tuple] = set()
        self.lock = threading.Lock()

    @property
    def dummy_client(self):
        return "dummyclientkeyxxxxxxxxxxx"

    @property
    def dummy_access_token(self):
        return "000000000-dummyaccesstokenxxxxxxxxxx"

    def validate_client_key(self, client_key, request):
        return client_key == self.standin.consumer_key

    def get_client_secret(self, client_key, request):
        return self.standin.consumer_secret if client_key == self.standin.consumer_key else "dummy-secret"

    def validate_access_token(self, client_key, token, request):
        return token == self.standin.access_token

    def get_access_token_secret(self, client_key, token, request):
        return self.standin.access_token_secret if token == self.standin.access_token else "dummy-secret"

    def validate_timestamp_and_nonce(self, client_key, timestamp, nonce, request, request_token=None,
                                     access_token=None):
        key = (client_key, timestamp, nonce, access_token)
        with self.lock:
            if key in self.nonces:
                return False  # a replayed request
            self.nonces.add(key)
            return True

    def validate_realms(self, client_key, token, request, uri=None, realms=None):
        return True


class XStandIn(StandIn):
    def __init__(self, host: str = "127.0.0.1"):
        super().__init__(host)
        self.consumer_key, self.consumer_secret = CONSUMER_KEY, CONSUMER_SECRET
        self.access_token, self.access_token_secret = ACCESS_TOKEN, ACCESS_TOKEN_SECRET
        self.endpoint = ResourceEndpoint(_Validator(self))
        self.tweets: dict[str, dict] = {}  # id → {"id", "text", "at"}; live posts
        self.deleted: dict[str, dict] = {}
        self.timeline_access = True
        self._ids = itertools.count(1_861_000_000_000_000_000)
        self.route("POST", "/2/tweets", self.create)
        self.route("DELETE", "/2/tweets/{id}", self.delete)
        self.route("GET", "/2/users/me", self.me)
        self.route("GET", "/2/users/{id}/tweets", self.timeline)

    def clear(self) -> None:
        """Forget every post, request and planned fault (one server shared by many tests)."""
        with self._lock:
            self.tweets.clear()
            self.deleted.clear()
            self.requests.clear()
            self.faults.clear()
            self.incomplete = 0
            self.timeline_access = True

    # -- planned faults -------------------------------------------------------------

    def rate_limit(self, route: str = "POST /2/tweets", reset_in: int = 60, times: int = 1) -> int:
        """Answer 429 as X does; returns the reset time (epoch seconds) it announces."""
        reset = int(time.time()) + reset_in
        self.fail(route, 429, TOO_MANY, {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0",
                                         "x-rate-limit-reset": str(reset)}, times=times)
        return reset

    # -- checks ---------------------------------------------------------------------

    def check(self, req: Request) -> None:
        host = req.headers.get("host", "")
        query = urlencode([(k, v) for k, values in req.query.items() for v in values])
        uri = f"http://{host}{req.path}" + (f"?{query}" if query else "")
        # A JSON body is not signed; oauthlib ignores bodies that are not form-encoded.
        valid, _ = self.endpoint.validate_protected_resource_request(
            uri, http_method=req.method, body=req.body.decode("utf-8", "replace"),
            headers={k.title(): v for k, v in req.headers.items()})
        if not valid:
            raise Refuse(401, UNAUTHORIZED)

    # -- routes ---------------------------------------------------------------------

    def create(self, req: Request) -> Reply:
        if not req.headers.get("content-type", "").startswith("application/json"):
            raise Refuse(400, invalid_request("Content-Type must be application/json", "body"))
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
            raise Refuse(400, invalid_request("$.text: a text is required"))
        text = body["text"]
        if parse_tweet(text).weightedLength > LIMIT:
            raise Refuse(400, invalid_request(TOO_LONG))
        with self._lock:
            if any(t["text"] == text for t in self.tweets.values()):
                raise Refuse(403, DUPLICATE)
            tweet_id = str(next(self._ids))
            self.tweets[tweet_id] = {"id": tweet_id, "text": text, "at": time.time()}
        return Reply(201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}})

    def delete(self, req: Request) -> Reply:
        tweet_id = req.params["id"]
        with self._lock:
            tweet = self.tweets.pop(tweet_id, None)
            if tweet is None:
                raise Refuse(404, {"title": "Not Found Error", "type": "https://api.twitter.com/2/problems/resource-not-found",
                                   "detail": f"Could not find tweet with id: [{tweet_id}].", "status": 404})
            self.deleted[tweet_id] = tweet
        return Reply(200, {"data": {"deleted": True}})

    def me(self, req: Request) -> Reply:
        return Reply(200, {"data": {"id": USER_ID, "name": "The Daily Paper", "username": USERNAME}})

    def timeline(self, req: Request) -> Reply:
        if not self.timeline_access:
            raise Refuse(403, NOT_ENROLLED)
        if req.params["id"] != USER_ID:
            raise Refuse(404, {"title": "Not Found Error", "detail": "Could not find user.", "status": 404})
        try:
            limit = int(req.arg("max_results", "10"))
        except ValueError:
            limit = 0
        if not 5 <= limit <= 100:
            raise Refuse(400, invalid_request("The `max_results` query parameter value is not between 5 and 100",
                                              "max_results"))
        with self._lock:
            tweets = sorted(self.tweets.values(), key=lambda t: t["at"], reverse=True)[:limit]
        with_entities = "entities" in (req.arg("tweet.fields") or "").split(",")
        return Reply(200, {"data": [self._shown(t, with_entities) for t in tweets],
                           "meta": {"result_count": len(tweets)}})

    @staticmethod
    def _shown(tweet: dict, with_entities: bool) -> dict:
        """A post as X returns it: links replaced by t.co, &, < and > escaped."""
        text, urls, shift = tweet["text"], [], 0
        shown = text
        for n, found in enumerate(extract_urls_with_indices(text)):
            start, end = found["indices"]
            short = f"https://t.co/{tweet['id'][-6:]}{n}"
            shown = shown[:start + shift] + short + shown[end + shift:]
            urls.append({"start": start + shift, "end": start + shift + len(short), "url": short,
                         "expanded_url": found["url"], "display_url": found["url"].split("://", 1)[-1][:26]})
            shift += len(short) - (end - start)
        out = {"id": tweet["id"], "text": html.escape(shown, quote=False), "edit_history_tweet_ids": [tweet["id"]]}
        if with_entities and urls:
            out["entities"] = {"urls": urls}
        return out
