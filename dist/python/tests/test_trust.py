"""The client talks only to a daemon of its own user, through a folder only that user
controls, and sends nothing otherwise: a socket folder open to the group or to others, a
folder or socket of another user, a folder reached through a link others can swap, an
open folder above, and a real listener running as another uid."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from latchkey import Client, DaemonNotRunning, UntrustedDaemon

from conftest import START_TIMEOUT, Env, FakeServer, Reply, private_dir, socket_has_connection

OTHER_UID = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")

VERSION = b'{"jsonrpc":"2.0","id":1,"result":{"version":"0.1.0","protocol":1}}\n'


def version_reply(line: bytes) -> bytes:
    return VERSION


def listener_in(folder: Path) -> socket.socket:
    """A listening socket of this user at ``folder/latchkey.sock``, never accepted from: a
    connection attempt shows up in its queue."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "latchkey.sock"))
    sock.listen(4)
    return sock


def refused(path: Path) -> UntrustedDaemon:
    with pytest.raises(UntrustedDaemon) as caught:
        Client(path, timeout=5).version()
    error = caught.value
    assert error.kind == "untrusted_daemon"
    assert error.path == str(path)
    assert str(error).startswith("refusing to talk to latchkeyd: ")
    return error


@pytest.mark.parametrize("mode", [0o770, 0o730, 0o707, 0o702, 0o777])
def test_a_socket_folder_open_to_group_or_others_is_refused(env: Env, daemon, mode: int) -> None:
    folder = daemon.socket.parent
    os.chmod(folder, mode)
    error = refused(daemon.socket)
    assert f"{folder} can be changed by other users (mode {mode:04o})" in str(error)
    assert f"chmod go-w '{folder}'" in str(error)
    os.chmod(folder, 0o700)
    # The daemon never saw a request from the refused client.
    assert 'method="' not in daemon.log
    with Client(daemon.socket) as client:
        client.version()
    # Readable by others is fine; only writing matters.
    os.chmod(folder, 0o755)
    with Client(daemon.socket) as client:
        client.version()


def test_a_refused_folder_gets_no_connection_at_all(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "open")
    with listener_in(folder) as listener:
        os.chmod(folder, 0o777)
        refused(folder / "latchkey.sock")
        assert not socket_has_connection(listener)


@needs_root
def test_a_socket_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "theirs")
    with listener_in(folder) as listener:
        os.chown(folder, OTHER_UID, OTHER_UID)
        error = refused(folder / "latchkey.sock")
        assert f"{folder} belongs to" in str(error) and f"uid {OTHER_UID}" in str(error)
        assert not socket_has_connection(listener)


@needs_root
def test_a_socket_file_of_another_user_is_refused(env: Env, daemon) -> None:
    os.chown(daemon.socket, OTHER_UID, OTHER_UID)
    error = refused(daemon.socket)
    assert f"{daemon.socket} belongs to" in str(error) and f"uid {OTHER_UID}" in str(error)
    assert 'method="' not in daemon.log
    os.chown(daemon.socket, os.geteuid(), os.getegid())
    with Client(daemon.socket) as client:
        client.version()


@needs_root
def test_a_folder_above_of_another_user_is_refused(tmp_path: Path) -> None:
    above = private_dir(tmp_path / "above")
    folder = private_dir(above / "mine")
    with listener_in(folder) as listener:
        os.chown(above, OTHER_UID, OTHER_UID)
        error = refused(folder / "latchkey.sock")
        assert f"{above} belongs to" in str(error)
        assert not socket_has_connection(listener)


def test_an_open_folder_above_is_refused_unless_sticky(
    tmp_path: Path, fake_server: Callable[[Reply], FakeServer]
) -> None:
    server = fake_server(version_reply)
    folder = server.path.parent
    above = folder.parent
    os.chmod(above, 0o777)
    try:
        error = refused(server.path)
        assert f"{above} can be changed by other users (mode 0777)" in str(error)
        assert server.connections == 0
        os.chmod(above, 0o1777)  # sticky, like /tmp
        with Client(server.path) as client:
            assert client.version().protocol == 1
        assert server.connections == 1
    finally:
        os.chmod(above, 0o700)


def test_a_link_through_an_open_folder_is_refused(
    tmp_path: Path, fake_server: Callable[[Reply], FakeServer]
) -> None:
    server = fake_server(version_reply)
    open_folder = private_dir(tmp_path / "open")
    os.chmod(open_folder, 0o777)
    link = open_folder / "link"
    link.symlink_to(server.path.parent)
    # The link's target is private, but anyone could swap the link.
    refused(link / server.path.name)
    assert server.connections == 0
    # Through a link in a private folder it is fine.
    os.chmod(open_folder, 0o700)
    with Client(link / server.path.name) as client:
        client.version()


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    error = refused(not_a_folder / "latchkey.sock")
    assert "is not a folder" in str(error)


def test_a_missing_folder_or_socket_means_not_running(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning):
        Client(tmp_path / "no-folder" / "latchkey.sock").version()
    with pytest.raises(DaemonNotRunning):
        Client(private_dir(tmp_path / "empty") / "latchkey.sock").version()


# The listener: bound by this user (so the socket file and folder pass), then it becomes
# another uid before listen(), which is when the kernel records its peer credentials.
ROGUE = """
import os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(sys.argv[1])
os.setgid(int(sys.argv[2]))
os.setuid(int(sys.argv[2]))
sock.listen(1)
print("listening", flush=True)
sock.settimeout(float(sys.argv[3]))
conn, _ = sock.accept()
conn.settimeout(float(sys.argv[3]))
received = 0
while True:
    chunk = conn.recv(4096)
    if not chunk:
        break
    received += len(chunk)
print("received", received, flush=True)
"""


@needs_root
def test_a_listener_of_another_uid_in_our_folder_gets_nothing(env: Env) -> None:
    folder = private_dir(env.runtime_dir / "latchkey")
    path = folder / "latchkey.sock"
    rogue = subprocess.Popen(
        [sys.executable, "-c", ROGUE, str(path), str(OTHER_UID), str(START_TIMEOUT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert rogue.stdout is not None
        assert rogue.stdout.readline() == "listening\n"
        with pytest.raises(UntrustedDaemon) as caught:
            Client(path, timeout=5).set_api_key("mine", "sk-victim-secret")
        text = str(caught.value)
        assert f"the process listening on {path} runs as" in text, text
        assert f"uid {OTHER_UID}" in text
        assert "sk-victim-secret" not in text
        # The rogue saw one connection that sent nothing.
        out, _ = rogue.communicate(timeout=START_TIMEOUT)
        assert out == "received 0\n"
    finally:
        if rogue.poll() is None:
            rogue.kill()
            rogue.wait(START_TIMEOUT)


def test_nothing_is_sent_before_the_checks_pass_even_for_get(
    tmp_path: Path, fake_server: Callable[[Reply], FakeServer]
) -> None:
    server = fake_server(
        lambda line: (
            json.dumps(
                {"jsonrpc": "2.0", "id": 1, "result": {"secret": "planted", "kind": "api_key"}}
            ).encode()
            + b"\n"
        )
    )
    os.chmod(server.path.parent, 0o770)
    with pytest.raises(UntrustedDaemon):
        Client(server.path).get("github")
    assert server.requests == [] and server.connections == 0
