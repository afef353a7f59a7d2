"""The wire as this client writes and reads it, against a stand-in server that answers
what the real daemon never would: garbage, bytes that are not UTF-8, JSON of the wrong
shape, another request's answer, a line over the cap, half a line, silence. Each is a
`ProtocolError`, `ConnectionClosed` or `Timeout` that quotes nothing it received, and the
next call starts on a fresh connection."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any, Callable, Dict

import pytest

import latchkey.wire
from latchkey import (
    Client,
    ConnectionClosed,
    DaemonError,
    NotFound,
    ProtocolError,
    Secret,
    Timeout,
)

from conftest import HANG, CloseAfter, FakeServer, Reply

CANARY = "sk-canary-never-shown-0123"

Start = Callable[[Reply], FakeServer]


def answer(result: Any, request_id: Any = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode() + b"\n"


def get_result(**fields: Any) -> Dict[str, Any]:
    return {"secret": CANARY, "kind": "api_key", "scopes": [], **fields}


def answer_to(result: Any) -> Reply:
    """Answers every request with `result`, under the request's own id."""
    return lambda line: answer(result, json.loads(line)["id"])


def request(server: FakeServer, n: int = 0) -> Dict[str, Any]:
    return json.loads(server.requests[n])


def test_request_lines_are_pinned(fake_server: Start) -> None:
    server = fake_server(answer_to(get_result()))
    with Client(server.path) as client:
        client.get(
            "github", account="work", scopes=["repo", "gist"], min_valid=timedelta(seconds=90.5)
        )
        client.get("plain")
    assert server.requests[0] == (
        b'{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"github","account":"work",'
        b'"scopes":["repo","gist"],"min_valid_secs":91}}'
    )
    assert request(server, 1) == {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "get",
        "params": {"service": "plain"},
    }
    assert server.connections == 1


def test_set_sends_the_secret_only_as_the_bundle_value(fake_server: Start) -> None:
    entry = {
        "service": "s",
        "account": "default",
        "kind": "password",
        "scopes": [],
        "expires_at": None,
        "has_refresh_token": False,
        "provider": None,
        "created_at": "2026-11-23T14:34:09Z",
        "updated_at": "2026-11-23T14:34:09.123456789Z",
        "last_used_at": None,
        "last_refreshed_at": None,
        "state": "valid",
    }
    server = fake_server(lambda line: answer({"entry": entry}))
    with Client(server.path) as client:
        got = client.set_password("s", "alice", Secret(CANARY), account="a")
    assert request(server)["params"] == {
        "service": "s",
        "account": "a",
        "bundle": {"kind": "password", "username": "alice", "password": CANARY},
    }
    assert got.updated_at.microsecond == 123456


@pytest.mark.parametrize(
    "reply,problem",
    [
        (b"garbage\n", "not JSON"),
        (b"\xff\xfe\xfd\n", "not UTF-8"),
        (b"[1,2,3]\n", "not a JSON object"),
        (b'{"jsonrpc":"1.0","id":1,"result":{}}\n', "not JSON-RPC 2.0"),
        (b'{"jsonrpc":"2.0","result":{}}\n', "no id"),
        (b'{"jsonrpc":"2.0","id":1}\n', "neither result nor error"),
        (answer(get_result(), request_id=2), "not for the request sent"),
        (answer(get_result(), request_id="1"), "not for the request sent"),
        (answer(get_result(), request_id=None), "not for the request sent"),
        (answer(get_result(), request_id=True), "not for the request sent"),
        (answer("a string"), "result is not an object"),
        (answer({"kind": "api_key"}), "result.secret is missing"),
        (answer(get_result(secret=7)), "result.secret is missing or not a string"),
        (answer(get_result(scopes="repo")), "result.scopes"),
        (answer(get_result(expires_at="yesterday")), "result.expires_at"),
        (b'{"jsonrpc":"2.0","id":1,"result":{"secret":NaN,"kind":"api_key"}}\n', "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "not JSON"),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"m"}}\n', "no data.kind"),
        (
            b'{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m","data":{"kind":"internal"}}}\n',
            "no numeric code",
        ),
        (b'{"jsonrpc":"2.0","id":1,"error":"boom"}\n', "error is not an object"),
    ],
)
def test_malformed_answers_are_protocol_errors(
    fake_server: Start, reply: bytes, problem: str
) -> None:
    server = fake_server(lambda line: reply)
    client = Client(server.path, timeout=5)
    with pytest.raises(ProtocolError) as caught:
        client.get("github")
    error = caught.value
    assert error.kind == "protocol_error"
    assert problem in str(error)
    # Nothing received is quoted, and the connection was dropped.
    assert CANARY not in str(error) and CANARY not in repr(error)
    assert "garbage" not in str(error)
    # Nor is any error it was raised after, which could hold the answer's text (a JSON
    # error's `doc`, a decoding error's `object`).
    assert error.__context__ is None and error.__cause__ is None
    assert client._connection is None
    client.close()


def test_a_line_over_the_cap_is_refused_without_reading_it_all(fake_server: Start) -> None:
    # 64 MiB without a newline: the client stops at its cap of 1 KiB.
    big = b'{"jsonrpc":"2.0","id":1,"result":{"secret":"' + b"x" * (64 << 20)
    server = fake_server(lambda line: big)
    with Client(server.path, timeout=10, max_response=1024) as client:
        with pytest.raises(ProtocolError) as caught:
            client.get("github")
    assert "exceeds 1024 bytes" in str(caught.value)


def test_the_default_cap_is_16_mib(fake_server: Start) -> None:
    within = answer(get_result(secret="s" * (15 << 20)))
    beyond = answer(get_result(secret="s" * (17 << 20)))
    replies = iter([within, beyond[:-1].replace(b'"id": 1', b'"id": 2') + b"\n"])
    server = fake_server(lambda line: next(replies))
    with Client(server.path, timeout=20) as client:
        assert len(client.get("big").secret) == 15 << 20
        with pytest.raises(ProtocolError) as caught:
            client.get("bigger")
    assert f"exceeds {16 << 20} bytes" in str(caught.value)


def test_an_answer_read_one_byte_at_a_time_is_put_together(fake_server: Start, monkeypatch) -> None:
    monkeypatch.setattr(latchkey.wire, "_READ_CHUNK", 1)
    server = fake_server(answer_to(get_result()))
    with Client(server.path) as client:
        assert client.get("x").secret.expose() == CANARY
        assert client.get("y").secret.expose() == CANARY


def test_a_hang_up_without_answer_is_connection_closed(fake_server: Start) -> None:
    server = fake_server(lambda line: None)
    with Client(server.path) as client:
        with pytest.raises(ConnectionClosed) as caught:
            client.get("x")
        assert caught.value.kind == "connection_closed"
        assert client._connection is None
        # The next call opens a new (checked) connection.
        with pytest.raises(ConnectionClosed):
            client.get("x")
    assert server.connections == 2


def test_half_a_line_then_a_hang_up_is_a_protocol_error(fake_server: Start) -> None:
    server = fake_server(lambda line: CloseAfter(answer(get_result())[:20]))
    with Client(server.path) as client:
        with pytest.raises(ProtocolError) as caught:
            client.get("x")
    assert "ended in the middle of a line" in str(caught.value)


def test_silence_is_a_timeout_within_the_deadline(fake_server: Start) -> None:
    server = fake_server(lambda line: HANG)
    started = time.monotonic()
    with Client(server.path, timeout=0.5) as client:
        with pytest.raises(Timeout) as caught:
            client.get("x")
        took = time.monotonic() - started
        assert caught.value.kind == "timeout"
        assert isinstance(caught.value, TimeoutError)
        assert 0.5 <= took < 5, took
        assert client._connection is None


def test_a_null_id_error_is_the_answer_to_the_request(fake_server: Start) -> None:
    server = fake_server(
        lambda line: (
            b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"request line exceeds '
            b'the limit","data":{"kind":"too_large"}}}\n'
        )
    )
    with Client(server.path) as client:
        with pytest.raises(DaemonError) as caught:
            client.get("x")
    assert caught.value.kind == "too_large" and caught.value.code == -32600


def test_unknown_fields_and_a_crlf_line_end_are_accepted(fake_server: Start) -> None:
    reply = answer(get_result(new_field={"nested": True}, token_type="Bearer"))[:-1] + b"\r\n"
    server = fake_server(lambda line: reply)
    with Client(server.path) as client:
        got = client.get("x")
    assert got.token_type == "Bearer"


def test_an_error_message_with_terminal_escapes_is_shown_escaped(fake_server: Start) -> None:
    server = fake_server(
        lambda line: (
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "error": {
                        "code": -32000,
                        "message": "no entry\x1b[2J\u202e",
                        "data": {"kind": "not_found", "hint": "try\nagain"},
                    },
                }
            ).encode()
            + b"\n"
        )
    )
    with Client(server.path) as client:
        with pytest.raises(NotFound) as caught:
            client.get("x")
    assert str(caught.value) == "no entry\\u{1b}[2J\\u{202e} (try\\u{a}again)"
    assert caught.value.message == "no entry\x1b[2J\u202e"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get("x", scopes="repo"),
        lambda c: c.get(7),
        lambda c: c.get("x", min_valid=-1),
        lambda c: c.get("x", min_valid="60"),
        lambda c: c.set_api_key("x", b"bytes"),
        lambda c: c.set_api_key("x", "lone \ud800 surrogate"),
        lambda c: c.set_bundle("x", {"kind": "api_key", "key": object()}),
        lambda c: c.set_oauth2("x", "at", expires_at="2030-01-01"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(fake_server: Start, call) -> None:
    server = fake_server(lambda line: answer(get_result()))
    with Client(server.path) as client:
        with pytest.raises((TypeError, ValueError)) as caught:
            call(client)
    assert "\ud800" not in str(caught.value) and "lone \\ud800" not in repr(caught.value)
    assert caught.value.__context__ is None or not isinstance(
        caught.value.__context__, UnicodeError
    )
    assert server.requests == []
