"""Round trips through the real daemon: set, get, clear, list, status and version, from
this client and from the built `latchkey` CLI, on the default socket and a named one."""

from __future__ import annotations

import select
import threading
from datetime import datetime, timedelta, timezone

import pytest

from latchkey import Client, Entry, GetResult, NotFound, PROTOCOL_VERSION, Secret

from conftest import Env, Harness


def test_the_default_socket_is_found_from_xdg_runtime_dir(env: Env, daemon, monkeypatch) -> None:
    monkeypatch.delenv("LATCHKEY_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(env.runtime_dir))
    with Client() as client:
        assert client.path == str(env.socket)
        info = client.version()
    assert info.protocol == PROTOCOL_VERSION
    assert info.version


def test_latchkey_socket_wins_over_the_runtime_dir(
    env: Env, harness: Harness, tmp_path, monkeypatch
) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir(mode=0o700)
    daemon = harness.start(socket_path=other / "s.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(env.runtime_dir))
    monkeypatch.setenv("LATCHKEY_SOCKET", str(daemon.socket))
    with Client() as client:
        assert client.path == str(daemon.socket)
        client.set_api_key("named", "sk-named")
        assert client.get("named").secret.expose() == "sk-named"


def test_api_key_set_get_list_status_clear(daemon) -> None:
    with Client(daemon.socket) as client:
        entry = client.set_api_key("openai", "sk-round-trip-1")
        assert isinstance(entry, Entry)
        assert (entry.service, entry.account, entry.kind, entry.state) == (
            "openai",
            "default",
            "api_key",
            "valid",
        )
        assert entry.created_at.tzinfo is not None
        assert abs(entry.created_at - datetime.now(timezone.utc)) < timedelta(minutes=5)

        got = client.get("openai")
        assert isinstance(got, GetResult)
        assert got.secret.expose() == "sk-round-trip-1"
        assert got.kind == "api_key"
        assert got.scopes == ()
        assert got.expires_at is None

        client.set_api_key("openai", Secret("sk-other-account"), account="work")
        assert client.get("openai", account="work").secret.expose() == "sk-other-account"
        assert client.get("openai").secret.expose() == "sk-round-trip-1"

        listed = client.list()
        assert sorted((e.service, e.account) for e in listed) == [
            ("openai", "default"),
            ("openai", "work"),
        ]

        status = client.status()
        assert status.daemon.store == "memory"
        assert status.daemon.persistent is False
        assert status.daemon.protocol == PROTOCOL_VERSION
        assert status.daemon.entries == 2
        assert len(status.entries) == 2
        only_work = client.status(account="work")
        assert [(e.service, e.account) for e in only_work.entries] == [("openai", "work")]

        assert client.clear("openai", account="work") is True
        assert client.clear("openai", account="work") is False
        with pytest.raises(NotFound):
            client.get("openai", account="work")
        assert [e.account for e in client.list()] == ["default"]


def test_password_and_oauth2_bundles(daemon) -> None:
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    with Client(daemon.socket) as client:
        client.set_password("db", "alice", "pw-round-trip")
        got = client.get("db")
        assert (got.kind, got.username, got.secret.expose()) == (
            "password",
            "alice",
            "pw-round-trip",
        )

        entry = client.set_oauth2(
            "api",
            "at-round-trip",
            refresh_token="rt-round-trip",
            expires_at=expires,
            scopes=["read", "write"],
        )
        assert entry.kind == "oauth2"
        assert entry.has_refresh_token is True
        assert entry.expires_at == expires
        assert entry.scopes == ("read", "write")
        got = client.get("api", scopes=["read"], min_valid=60)
        assert got.secret.expose() == "at-round-trip"
        assert got.token_type == "Bearer"
        assert got.expires_at == expires
        assert got.scopes == ("read", "write")
        assert client.get("api", min_valid=timedelta(minutes=30)).secret.expose() == "at-round-trip"

        relative = client.set_oauth2("rel", "at-relative", expires_in=600)
        assert relative.expires_at is not None
        assert (
            timedelta(minutes=9)
            < relative.expires_at - datetime.now(timezone.utc)
            <= timedelta(minutes=10, seconds=5)
        )

        raw = client.set_bundle("raw", {"kind": "api_key", "key": Secret("sk-raw")})
        assert raw.kind == "api_key"
        assert client.get("raw").secret.expose() == "sk-raw"


def test_unicode_names_round_trip(daemon) -> None:
    with Client(daemon.socket) as client:
        client.set_api_key("dienst-ü-😀", "sk-ü-😀", account="José")
        assert client.get("dienst-ü-😀", account="José").secret.expose() == "sk-ü-😀"
        assert [(e.service, e.account) for e in client.list()] == [("dienst-ü-😀", "José")]


def test_the_cli_and_this_client_see_the_same_entries(env: Env, daemon) -> None:
    out = env.cli(["set", "from-cli"], stdin="sk-from-cli\n")
    assert out.returncode == 0, out.stderr
    with Client(daemon.socket) as client:
        assert client.get("from-cli").secret.expose() == "sk-from-cli"
        client.set_api_key("from-python", "sk-from-python")
    out = env.cli(["get", "from-python"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == "sk-from-python\n"
    out = env.cli(["clear", "from-cli"])
    assert out.returncode == 0, out.stderr
    with Client(daemon.socket) as client:
        with pytest.raises(NotFound):
            client.get("from-cli")


def test_one_connection_serves_many_calls_and_threads_share_it(daemon) -> None:
    with Client(daemon.socket) as client:
        client.set_api_key("shared", "sk-shared")
        errors = []

        def worker() -> None:
            try:
                for _ in range(50):
                    assert client.get("shared").secret.expose() == "sk-shared"
            except Exception as error:  # reported below, on the test's thread
                errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not errors
        assert client._connection is not None and client._connection.calls == 201


def test_a_connection_the_daemon_closed_when_idle_is_replaced(harness: Harness) -> None:
    daemon = harness.start("--idle-timeout", "1")
    with Client(daemon.socket) as client:
        client.set_api_key("idle", "sk-idle")
        first = client._connection
        assert first is not None
        # Wait (with a deadline) for the daemon to close the idle connection: the socket
        # turns readable at end of stream.
        poller = select.poll()
        poller.register(first._sock, select.POLLIN)
        assert poller.poll(20_000), "the daemon never closed the idle connection"
        assert client.get("idle").secret.expose() == "sk-idle"
        assert client._connection is not first
