"""What the stand-in Telegram Bot API refuses, as the real one does: a wrong token, an
unknown chat, HTML that does not parse, text over 4096 UTF-16 units after entity parsing,
empty text, an edit that changes nothing, a delete after 48 hours; and that it takes
form and JSON bodies alike and keeps a post whose answer it loses."""

from __future__ import annotations

import pytest
import requests

from tests.support.telegram_server import Chat, EntityError, TelegramServer, parse_html, utf16_length

TOKEN = "7012345678:AAF-secret-token_Zx9yW8vU7tS6rQ5pO4n"


@pytest.fixture(scope="module")
def running_server():
    with TelegramServer(token=TOKEN, chats=[Chat(-1001234567890, "lnnnews")]) as s:
        yield s


@pytest.fixture
def server(running_server):
    running_server.clear()
    return running_server


def call(server, method, token=TOKEN, form=None, **params):
    url = f"{server.url}/bot{token}/{method}"
    resp = requests.post(url, data=form, json=None if form is not None else params, timeout=5)
    return resp.status_code, resp.json()


def send(server, text, **params):
    return call(server, "sendMessage", chat_id="@lnnnews", text=text, parse_mode="HTML", **params)


def test_a_wrong_token_is_unauthorized(server):
    status, body = call(server, "sendMessage", token="7012345678:AAF-wrong", chat_id="@lnnnews", text="hi")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert server.posts() == [] and len(server.refused()) == 1


def test_a_form_body_and_a_json_body_are_both_accepted(server):
    status, body = call(server, "sendMessage", form={"chat_id": "-1001234567890", "text": "<b>Form</b> &amp; co",
                                                     "parse_mode": "HTML",
                                                     "link_preview_options": '{"url": "https://e.example/a"}'})
    assert status == 200 and body["ok"] and body["result"]["text"] == "Form & co"
    assert body["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 4}]
    status, body = send(server, "JSON", link_preview_options={"is_disabled": False, "url": "https://e.example/b"})
    assert status == 200 and body["result"]["message_id"] == 102
    assert body["result"]["chat"]["username"] == "lnnnews"
    assert server.refused() == []


def test_an_unknown_chat_is_not_found(server):
    status, body = call(server, "sendMessage", chat_id="@someoneelse", text="hi")
    assert status == 400 and body["description"] == "Bad Request: chat not found"


@pytest.mark.parametrize("html", ["I <3 R&amp;D", "R&D", "<p>para</p>", "<b>open", "<b>x</i>", "a &nbsp; b",
                                  '<span class="x">s</span>', "x</b>"])
def test_html_that_does_not_parse_is_refused(server, html):
    status, body = send(server, html)
    assert status == 400 and body["description"].startswith("Bad Request: can't parse entities: "), body
    assert server.posts() == []


def test_supported_html_and_entities_are_parsed_as_telegram_does():
    text, entities = parse_html('<a href="https://e.example/?a=1&amp;b=2">link</a> &lt;3 &#8217; &#x1F680; '
                                "<b>bold <i>both</i></b> 5 > 4")
    assert text == "link <3 ’ 🚀 bold both 5 > 4"
    assert entities == [{"type": "text_link", "offset": 0, "length": 4, "url": "https://e.example/?a=1&b=2"},
                        {"type": "bold", "offset": 13, "length": 9}, {"type": "italic", "offset": 18, "length": 4}]
    with pytest.raises(EntityError):
        parse_html('<a href="https://e.example/?a=1&b=2">link</a>')


def test_the_length_is_counted_in_utf16_units_after_entity_parsing(server):
    fits = "🚀" * 2048  # 2048 characters, 4096 UTF-16 units
    assert utf16_length(fits) == 4096
    assert send(server, fits)[0] == 200
    status, body = send(server, fits + "a")
    assert (status, body["description"]) == (400, "Bad Request: message is too long")
    # Markup and entities do not count: 4096 visible characters in much longer HTML.
    assert send(server, "<b>" + "&amp;" * 4096 + "</b>")[0] == 200
    assert len(server.posts()) == 2


@pytest.mark.parametrize("text", ["", "   ", "<b></b>"])
def test_empty_text_is_refused(server, text):
    status, body = send(server, text)
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")


def test_an_edit_must_change_something_and_keeps_history(server):
    _, sent = send(server, "first", link_preview_options={"url": "https://e.example/a"})
    message_id = sent["result"]["message_id"]
    same = call(server, "editMessageText", chat_id="@lnnnews", message_id=message_id, text="first",
                parse_mode="HTML", link_preview_options={"url": "https://e.example/a"})
    assert same[0] == 400 and same[1]["description"].startswith("Bad Request: message is not modified")
    status, body = call(server, "editMessageText", chat_id="@lnnnews", message_id=message_id, text="second",
                        parse_mode="HTML")
    assert status == 200 and body["result"]["text"] == "second" and body["result"]["edit_date"]
    assert [e["text"] for e in server.message(message_id).edits] == ["first"]
    missing = call(server, "editMessageText", chat_id="@lnnnews", message_id=999, text="x")
    assert missing[1]["description"] == "Bad Request: message to edit not found"


def test_a_delete_works_within_48_hours_only(server):
    ids = [send(server, f"post {n}")[1]["result"]["message_id"] for n in range(2)]
    server.age(ids[0], hours=48.1)
    old = call(server, "deleteMessage", chat_id="@lnnnews", message_id=ids[0])
    assert old == (400, {"ok": False, "error_code": 400, "description": "Bad Request: message can't be deleted"})
    assert call(server, "deleteMessage", chat_id="@lnnnews", message_id=ids[1]) == (200, {"ok": True,
                                                                                           "result": True})
    gone = call(server, "deleteMessage", chat_id="@lnnnews", message_id=ids[1])
    assert gone[1]["description"] == "Bad Request: message to delete not found"
    assert [m.message_id for m in server.posts()] == [ids[0]]


def test_a_bot_without_standing_in_the_chat_is_refused(server):
    server.chats[0].refusal = (403, "Forbidden: bot was kicked from the channel chat")
    status, body = send(server, "hi")
    assert (status, body["description"]) == (403, "Forbidden: bot was kicked from the channel chat")


def test_flood_control_answers_429_with_retry_after(server):
    server.flood("sendMessage", retry_after=5)
    status, body = send(server, "hi")
    assert (status, body) == (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5",
                                    "parameters": {"retry_after": 5}})
    assert server.posts() == [] and send(server, "hi")[0] == 200


def test_flood_control_still_checks_the_token_first(server):
    server.flood("sendMessage", retry_after=5)
    assert call(server, "sendMessage", token="1:wrong", chat_id="@lnnnews", text="x")[0] == 401


def test_a_lost_answer_keeps_the_post(server):
    server.lose_answer("sendMessage")
    with pytest.raises(requests.ConnectionError):
        send(server, "hi")
    assert [m.text for m in server.posts()] == ["hi"]
    [request] = server.seen("sendMessage")
    assert request.status == 0
