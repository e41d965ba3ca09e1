"""A stand-in Telegram Bot API: `POST /bot{token}/sendMessage`, `editMessageText`,
`deleteMessage`, checking what the real API checks.

- The token in the path (401 `Unauthorized` otherwise, in Telegram's error shape).
- Parameters from the query, a form body or a JSON body, as the real API takes them.
- The chat (by numeric id or @username; 400 `chat not found`), and the bot's standing
  in it (kicked: 403; no posting right: 400 `need administrator rights`).
- `parse_mode=HTML` as Telegram parses it: the supported tags only, balanced; entities
  `&lt; &gt; &amp; &quot;` and numeric ones. A `<` or `&` that is not part of a tag or an
  entity is refused ("can't parse entities") as the documentation requires (tdlib itself
  lets a stray `&` through; refusing it catches a sender that forgot to escape).
- The length after entity parsing, counted in UTF-16 code units (4096), and empty text.
- Messages are kept per chat with increasing ids and their edit history; an edit with
  the same content is refused (`message is not modified`); a delete works only within
  48 hours of posting (`age()` makes a message older).
- Faults from the base (`lose_answer`, `reset`, `fail`, `slow`) by method name
  ("sendMessage"); `flood(method, retry_after)` answers 429 with `parameters.retry_after`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field

from tests.support.http import Refuse, Reply, Request, StandIn

MAX_TEXT = 4096
DELETE_WINDOW = 48 * 3600
METHODS = ("sendMessage", "editMessageText", "deleteMessage")

# tag → entity type; Telegram's supported HTML.
_TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
         "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "span": "spoiler",
         "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
         "tg-emoji": "custom_emoji"}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_ATTR = r"""[a-zA-Z][\w-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?"""
_START_TAG_RE = re.compile(rf"<([a-zA-Z][\w-]*)((?:\s+{_ATTR})*)\s*>")
_ATTR_RE = re.compile(r"([a-zA-Z][\w-]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+)))?")


class EntityError(ValueError):
    pass


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode_entities(text: str, base: str, at: int) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "&":
            m = _ENTITY_RE.match(text, i)
            if not m:
                raise EntityError(f'Character "&" at byte offset {len((base[:at] + text[:i]).encode())} '
                                  "must be escaped as \"&amp;\"")
            out.append(_entity_char(m))
            i = m.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _entity_char(m: re.Match) -> str:
    if m.group(1):
        return _NAMED[m.group(1)]
    code = int(m.group(2)) if m.group(2) else int(m.group(3), 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code == 0:
        raise EntityError(f"invalid character reference {m.group(0)!r}")
    return chr(code)


def parse_html(html: str) -> tuple[str, list[dict]]:
    """Telegram's HTML parse mode: (text, entities with UTF-16 offsets), or EntityError."""
    out: list[str] = []
    units = 0
    stack: list[tuple[str, int, dict]] = []
    entities: list[dict] = []
    i = 0

    def offset() -> int:
        return len(html[:i].encode())

    while i < len(html):
        ch = html[i]
        if ch == "&":
            m = _ENTITY_RE.match(html, i)
            if not m:
                raise EntityError(f'Character "&" at byte offset {offset()} must be escaped as "&amp;"')
            c = _entity_char(m)
            out.append(c)
            units += utf16_length(c)
            i = m.end()
        elif ch == "<" and html.startswith("</", i):
            end = html.find(">", i)
            if end < 0:
                raise EntityError(f"Unclosed end tag at byte offset {offset()}")
            name = html[i + 2:end].strip().lower()
            if not stack:
                raise EntityError(f'Unexpected end tag "{name}" at byte offset {offset()}')
            open_name, start, attrs = stack.pop()
            if name != open_name:
                raise EntityError(f'Unmatched end tag at byte offset {offset()}, expected "</{open_name}>", '
                                  f'found "</{name}>"')
            entity = {"type": _TAGS[open_name], "offset": start, "length": units - start}
            if open_name == "a":
                if "href" not in attrs:
                    entity = None
                else:
                    entity["url"] = attrs["href"]
            if entity and entity["length"] > 0:
                entities.append(entity)
            i = end + 1
        elif ch == "<":
            m = _START_TAG_RE.match(html, i)
            if not m:
                raise EntityError(f"Unclosed start tag at byte offset {offset()}")
            name = m.group(1).lower()
            if name not in _TAGS:
                raise EntityError(f'Unsupported start tag "{name}" at byte offset {offset()}')
            attrs = {}
            for a in _ATTR_RE.finditer(m.group(2)):
                value = next((v for v in a.groups()[1:] if v is not None), "")
                attrs[a.group(1).lower()] = _decode_entities(value, html, m.start(2) + a.start())
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise EntityError('Tag "span" must have class "tg-spoiler"')
            stack.append((name, units, attrs))
            i = m.end()
        else:
            out.append(ch)
            units += utf16_length(ch)
            i += 1
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


@dataclass
class Chat:
    id: int
    username: str | None = None
    title: str = "Test channel"
    type: str = "channel"
    # What the chat answers to any call from the bot instead (kicked, no rights), or None.
    refusal: tuple[int, str] | None = None

    def json(self) -> dict:
        out = {"id": self.id, "title": self.title, "type": self.type}
        if self.username:
            out["username"] = self.username
        return out


@dataclass
class Message:
    message_id: int
    chat: Chat
    text: str  # after entity parsing
    entities: list[dict]
    html: str  # as sent
    link_preview_options: dict | None
    date: int
    edits: list[dict] = field(default_factory=list)  # earlier versions: {"text", "html", "edit_date"}
    edit_date: int | None = None
    deleted: bool = False

    def json(self) -> dict:
        out = {"message_id": self.message_id, "chat": self.chat.json(), "date": self.date, "text": self.text}
        if self.chat.type == "channel":
            out["sender_chat"] = self.chat.json()
        if self.entities:
            out["entities"] = self.entities
        if self.link_preview_options:
            out["link_preview_options"] = self.link_preview_options
        if self.edit_date:
            out["edit_date"] = self.edit_date
        return out


def _error(status: int, description: str, parameters: dict | None = None) -> Refuse:
    body = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Refuse(status, body)


def bad_request(description: str) -> Refuse:
    return _error(400, f"Bad Request: {description}")


class TelegramServer(StandIn):
    def __init__(self, token: str = "123456789:AAH-stand-in-token_0123456789abcdefgh",
                 chats: list[Chat] | None = None, host: str = "127.0.0.1"):
        super().__init__(host)
        self.token = token
        self.chats = chats or [Chat(-1001234567890, "lnnnews", "LNN News")]
        self.messages: list[Message] = []
        self._next_id: dict[int, int] = {}
        self._state = threading.Lock()
        self.route("POST", "/bot{token}/sendMessage", self._send, name="sendMessage")
        self.route("POST", "/bot{token}/editMessageText", self._edit, name="editMessageText")
        self.route("POST", "/bot{token}/deleteMessage", self._delete, name="deleteMessage")

    # -- test controls --------------------------------------------------------------

    def clear(self) -> None:
        """Forget messages, requests, planned faults and chat refusals (one server, many tests:
        stopping a server takes half a second)."""
        with self._cond:
            self.messages.clear()
            self._next_id.clear()
            self.requests.clear()
            self.faults.clear()
            self.incomplete = 0
            for chat in self.chats:
                chat.refusal = None

    def flood(self, method: str, retry_after: int, times: int = 1) -> None:
        """Answer the next call(s) with Telegram's flood-control 429."""
        self.fail(method, 429, {"ok": False, "error_code": 429,
                                "description": f"Too Many Requests: retry after {retry_after}",
                                "parameters": {"retry_after": retry_after}}, times=times)

    def age(self, message_id: int, hours: float, chat: Chat | None = None) -> None:
        """Make a message `hours` old."""
        self.message(message_id, chat).date = int(time.time() - hours * 3600)

    def message(self, message_id: int, chat: Chat | None = None) -> Message:
        chat = chat or self.chats[0]
        return next(m for m in self.messages if m.chat.id == chat.id and m.message_id == message_id)

    def posts(self, chat: Chat | None = None) -> list[Message]:
        """The messages live in a chat (the first one by default)."""
        chat = chat or self.chats[0]
        with self._state:
            return [m for m in self.messages if m.chat.id == chat.id and not m.deleted]

    # -- checks ---------------------------------------------------------------------

    def check(self, req: Request) -> None:
        if req.params.get("token") != self.token:
            raise _error(401, "Unauthorized")
        ctype = req.headers.get("content-type", "")
        if ctype.startswith("application/json") and not isinstance(req.json(), dict):
            raise bad_request("can't parse JSON object")

    def _chat(self, req: Request) -> Chat:
        value = req.arg("chat_id")
        if value is None or str(value).strip() == "":
            raise bad_request("chat_id is empty")
        value = str(value).strip()
        if value.startswith("@"):
            chat = next((c for c in self.chats if c.username and c.username.lower() == value[1:].lower()), None)
        else:
            chat = next((c for c in self.chats if str(c.id) == value), None)
        if chat is None:
            raise bad_request("chat not found")
        if chat.refusal:
            raise _error(*chat.refusal)
        return chat

    @staticmethod
    def _content(req: Request) -> tuple[str, str, list[dict], dict | None]:
        html = req.arg("text")
        if html is None or not isinstance(html, str):
            raise bad_request("message text is empty")
        mode = req.arg("parse_mode")
        if mode is None or mode == "":
            text, entities = html, []
        elif str(mode).lower() == "html":
            try:
                text, entities = parse_html(html)
            except EntityError as exc:
                raise bad_request(f"can't parse entities: {exc}") from None
        else:
            raise bad_request(f"unsupported parse_mode {mode!r} (this stand-in parses HTML only)")
        if not text.strip():
            raise bad_request("message text is empty")
        if utf16_length(text) > MAX_TEXT:
            raise bad_request("message is too long")
        preview = req.arg("link_preview_options")
        if isinstance(preview, str):
            try:
                preview = json.loads(preview)
            except ValueError:
                raise bad_request("can't parse link preview options JSON object") from None
        if preview is not None:
            if not isinstance(preview, dict) or not all(
                    isinstance(preview.get(k, False), bool)
                    for k in ("is_disabled", "prefer_small_media", "prefer_large_media", "show_above_text")):
                raise bad_request("can't parse link preview options JSON object")
            if "url" in preview and not isinstance(preview["url"], str):
                raise bad_request("can't parse link preview options JSON object")
        return html, text, entities, preview

    @staticmethod
    def _message_id(req: Request) -> int:
        value = req.arg("message_id")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("message identifier is not specified") from None

    def _find(self, chat: Chat, message_id: int) -> Message | None:
        return next((m for m in self.messages
                     if m.chat.id == chat.id and m.message_id == message_id and not m.deleted), None)

    # -- methods --------------------------------------------------------------------

    def _send(self, req: Request) -> Reply:
        chat = self._chat(req)
        html, text, entities, preview = self._content(req)
        with self._state:
            message_id = self._next_id.get(chat.id, 100) + 1
            self._next_id[chat.id] = message_id
            message = Message(message_id, chat, text, entities, html, preview, int(time.time()))
            self.messages.append(message)
        return Reply(200, {"ok": True, "result": message.json()})

    def _edit(self, req: Request) -> Reply:
        chat = self._chat(req)
        message_id = self._message_id(req)
        html, text, entities, preview = self._content(req)
        with self._state:
            message = self._find(chat, message_id)
            if message is None:
                raise bad_request("message to edit not found")
            if (text, entities, preview or None) == (message.text, message.entities, message.link_preview_options):
                raise bad_request("message is not modified: specified new message content and reply markup are "
                                  "exactly the same as a current content and reply markup of the message")
            message.edits.append({"text": message.text, "html": message.html, "edit_date": message.edit_date})
            message.text, message.entities, message.html = text, entities, html
            message.link_preview_options, message.edit_date = preview, int(time.time())
        return Reply(200, {"ok": True, "result": message.json()})

    def _delete(self, req: Request) -> Reply:
        chat = self._chat(req)
        message_id = self._message_id(req)
        with self._state:
            message = self._find(chat, message_id)
            if message is None:
                raise bad_request("message to delete not found")
            if time.time() - message.date >= DELETE_WINDOW:
                raise bad_request("message can't be deleted")
            message.deleted = True
        return Reply(200, {"ok": True, "result": True})
