"""Each error kind the real daemon can be made to report comes back as its own exception
class, with its `kind`, its message and its extra data, and the connection stays usable."""

from __future__ import annotations

import http.server
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, List

import pytest

import latchkey
from latchkey import (
    AuthenticationRequired,
    Client,
    DaemonError,
    InsufficientScope,
    InvalidRequest,
    LatchkeyError,
    Locked,
    NotFound,
    PermissionDenied,
    RefreshFailed,
    TooLarge,
    WrongPassphrase,
)

from conftest import Env, Harness


def test_every_protocol_kind_has_a_class_and_a_base() -> None:
    kinds = {
        "not_found",
        "authentication_required",
        "insufficient_scope",
        "locked",
        "backend_unavailable",
        "refresh_failed",
        "invalid_request",
        "permission_denied",
        "too_large",
        "internal",
        "login_failed",
        "wrong_passphrase",
        "not_confirmed",
    }
    assert set(latchkey.DAEMON_ERRORS) == kinds
    for kind, cls in latchkey.DAEMON_ERRORS.items():
        assert issubclass(cls, DaemonError) and issubclass(cls, LatchkeyError)
        error = latchkey.errors.from_wire({"code": -32000, "message": "m", "data": {"kind": kind}})
        assert type(error) is cls and error.kind == kind
    assert not kinds & latchkey.CLIENT_KINDS


def test_not_found(daemon) -> None:
    with Client(daemon.socket) as client:
        with pytest.raises(NotFound) as caught:
            client.get("missing")
        assert caught.value.kind == "not_found"
        assert caught.value.code == -32000
        assert caught.value.message == "no entry for that service and account"
        # A daemon error leaves the connection as it was.
        connection = client._connection
        client.set_api_key("present", "sk-present")
        assert client._connection is connection


@pytest.mark.parametrize("service", ["", "tab\there", "bidi\u202eevil", "x" * 513])
def test_invalid_names(daemon, service: str) -> None:
    with Client(daemon.socket) as client:
        with pytest.raises(InvalidRequest) as caught:
            client.set_api_key(service, "sk-never-stored")
        assert caught.value.kind == "invalid_request"
        # Nothing the client sent is repeated back, and escapes keep str() on one line.
        assert "sk-never-stored" not in str(caught.value)
        assert "\t" not in str(caught.value) and "\u202e" not in str(caught.value)


def test_an_invalid_bundle(daemon) -> None:
    with Client(daemon.socket) as client:
        with pytest.raises(InvalidRequest):
            client.set_bundle("b", {"kind": "no-such-kind", "key": "sk-x"})
        with pytest.raises(InvalidRequest):
            client.set_bundle("b", {"kind": "api_key"})


def test_permission_denied_for_the_daemons_own_services(daemon) -> None:
    with Client(daemon.socket) as client:
        with pytest.raises(PermissionDenied) as caught:
            client.get("latchkey:client-secret")
        assert caught.value.kind == "permission_denied"
        with pytest.raises(PermissionDenied):
            client.set_api_key("latchkey:mine", "sk-x")
        with pytest.raises(PermissionDenied):
            client.clear("latchkey:client-secret")


def test_too_large(daemon) -> None:
    with Client(daemon.socket) as client:
        with pytest.raises(TooLarge) as caught:
            client.set_api_key("big", "k" * 70_000)
        assert caught.value.kind == "too_large"
        assert "k" * 100 not in str(caught.value)
        # The daemon skipped the rest of the line; the connection still works.
        assert client.list() == ()


def test_insufficient_scope_names_the_missing_scopes(daemon) -> None:
    with Client(daemon.socket) as client:
        client.set_oauth2("gh", "at-scoped", expires_in=3600, scopes=["read"])
        with pytest.raises(InsufficientScope) as caught:
            client.get("gh", scopes=["read", "write", "admin"])
        assert caught.value.kind == "insufficient_scope"
        assert caught.value.missing_scopes == ("write", "admin")


def test_authentication_required_for_an_expired_token_without_refresh(daemon) -> None:
    expired = datetime(2001, 1, 1, tzinfo=timezone.utc)
    with Client(daemon.socket) as client:
        client.set_oauth2("old", "at-expired", expires_at=expired)
        with pytest.raises(AuthenticationRequired) as caught:
            client.get("old")
        assert caught.value.kind == "authentication_required"
        assert caught.value.hint and "latchkey set" in caught.value.hint
        assert caught.value.hint in str(caught.value)
        assert caught.value.login_url is None


class _TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """A provider's token endpoint that is down: every POST gets 503."""

    requests: List[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        type(self).requests.append(self.path)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def token_endpoint() -> Iterator[http.server.ThreadingHTTPServer]:
    _TokenEndpoint.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_refresh_failed_when_the_provider_is_down(
    env: Env, harness: Harness, token_endpoint
) -> None:
    port = token_endpoint.server_address[1]
    config = env.root / "config.toml"
    config.write_text(
        "[providers.test]\n"
        'client_id = "latchkey-test"\n'
        f'authorization_url = "http://127.0.0.1:{port}/authorize"\n'
        f'token_url = "http://127.0.0.1:{port}/token"\n'
    )
    config.chmod(0o600)
    daemon = harness.start("--config", str(config))
    with Client(daemon.socket) as client:
        client.set_oauth2(
            "api",
            "at-stale",
            refresh_token="rt-stale",
            provider="test",
            expires_at=datetime(2001, 1, 1, tzinfo=timezone.utc),
        )
        with pytest.raises(RefreshFailed) as caught:
            client.get("api")
    assert caught.value.kind == "refresh_failed"
    assert caught.value.retryable is True
    assert _TokenEndpoint.requests and set(_TokenEndpoint.requests) == {"/token"}
    assert "rt-stale" not in str(caught.value) and "at-stale" not in str(caught.value)


def test_locked_and_wrong_passphrase_with_the_file_store(harness: Harness) -> None:
    daemon = harness.start("--store", "file")
    with Client(daemon.socket) as client:
        status = client.status()
        assert (status.daemon.store, status.daemon.locked) == ("file", True)
        assert status.daemon.unlock_with == "new_passphrase"
        state = client.unlock("correct horse battery", create=True)
        assert (state.store, state.locked) == ("file", False)
        client.set_api_key("filed", "sk-filed")
        assert client.lock().locked is True
        with pytest.raises(Locked) as caught:
            client.get("filed")
        assert caught.value.kind == "locked"
        assert caught.value.hint
        with pytest.raises(WrongPassphrase) as wrong:
            client.unlock("not the passphrase")
        assert wrong.value.kind == "wrong_passphrase"
        assert wrong.value.retryable is True
        assert "not the passphrase" not in str(wrong.value)


def test_an_unknown_kind_from_a_newer_daemon_is_a_plain_daemon_error() -> None:
    error = latchkey.errors.from_wire(
        {"code": -32000, "message": "new", "data": {"kind": "brand_new", "extra": 1}}
    )
    assert type(error) is DaemonError
    assert (error.kind, error.message, error.data["extra"]) == ("brand_new", "new", 1)


def test_errors_of_this_side_have_their_own_kinds(tmp_path: Path) -> None:
    with pytest.raises(latchkey.DaemonNotRunning) as caught:
        Client(tmp_path / "nothing-here" / "latchkey.sock").list()
    assert caught.value.kind == "not_running"
    assert "latchkeyd is not running" in str(caught.value)
    folder = tmp_path / "empty"
    folder.mkdir(mode=0o700)
    with pytest.raises(latchkey.DaemonNotRunning):
        Client(folder / "latchkey.sock").list()
