"""The test harness: the real `latchkeyd` and `latchkey` binaries in private folders.

Binaries come from `$LATCHKEY_BIN_DIR`, by default the repository's ``target/debug``
(built by ``cargo build -p latchkey-daemon -p latchkey-cli --bins``). Each test gets its
own home, ``XDG_*`` folders and socket under pytest's `tmp_path`. A daemon is ready when
it logs ``latchkeyd is serving`` (read from its stderr as it arrives, with a deadline); it
is stopped by its pid with SIGTERM and must exit 0. Its log is kept for assertions (no
secret in it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 20.0
"""Seconds a daemon may take to start or to stop; generous for a loaded machine."""


def bin_dir() -> Path:
    """Where the built binaries are."""
    return Path(os.environ.get("LATCHKEY_BIN_DIR") or REPO / "target" / "debug")


def binary(name: str) -> Path:
    """The path of a built binary; fails the test (never skips) when it is missing."""
    path = bin_dir() / name
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{path} is missing: build it with `cargo build -p latchkey-daemon -p latchkey-cli "
            "--bins` or set LATCHKEY_BIN_DIR"
        )
    return path


def private_dir(path: Path) -> Path:
    """Creates `path` as a folder only this user can use (0700, whatever the umask)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class Env:
    """One test's private home and XDG folders, and the environment pointing at them."""

    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)
        self.runtime_dir = private_dir(root / "run")
        self.data_dir = private_dir(root / "data")
        self.config_dir = private_dir(root / "config")
        self.state_dir = private_dir(root / "state")
        self.vars: Dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "XDG_DATA_HOME": str(self.data_dir),
            "XDG_CONFIG_HOME": str(self.config_dir),
            "XDG_STATE_HOME": str(self.state_dir),
            # No session bus: the daemon serves the socket only, the CLI never tries a bus.
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/latchkey-test-bus",
        }

    @property
    def socket(self) -> Path:
        """The default socket in this environment."""
        return self.runtime_dir / "latchkey" / "latchkey.sock"

    def cli(
        self, args: Sequence[str], stdin: str = "", socket_path: Optional[Path] = None
    ) -> subprocess.CompletedProcess:
        """Runs the built `latchkey` CLI with `args` and `stdin` (secrets go there, never in
        argv)."""
        env = dict(self.vars)
        if socket_path is not None:
            env["LATCHKEY_SOCKET"] = str(socket_path)
        return subprocess.run(
            [str(binary("latchkey")), "--transport", "socket", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=START_TIMEOUT,
            check=False,
        )


class Daemon:
    """A running `latchkeyd`, with its log as it arrives."""

    def __init__(self, env: Env, args: Sequence[str], socket_path: Path) -> None:
        self.socket = socket_path
        self._lines: List[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [str(binary("latchkeyd")), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=dict(env.vars, RUST_LOG="info"),
            text=True,
        )
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._wait_until(lambda: "latchkeyd is serving" in self.log):
            self.process.kill()
            self.process.wait(START_TIMEOUT)
            pytest.fail(f"latchkeyd did not start:\n{self.log}")

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def _wait_until(self, condition: Callable[[], bool]) -> bool:
        """Waits until `condition` holds, re-checked on each new log line, for at most
        `START_TIMEOUT`; false if it never did (or the log ended first)."""
        with self._changed:
            self._changed.wait_for(lambda: condition() or self._ended, START_TIMEOUT)
            return condition()

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return self.process.pid

    @property
    def log(self) -> str:
        """Everything the daemon logged so far."""
        with self._changed:
            return "".join(self._lines)

    def wait_for_log(self, text: str) -> None:
        """Waits (with a deadline) until the daemon has logged `text`."""
        assert self._wait_until(lambda: text in self.log), (
            f"the daemon never logged {text!r}:\n{self.log}"
        )

    def stop(self) -> int:
        """Stops the daemon by its pid (SIGTERM) and returns its exit status."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            status = self.process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            status = self.process.wait(START_TIMEOUT)
        self._reader.join(START_TIMEOUT)
        return status


class Harness:
    """Starts daemons in one test's `Env` and stops them all at the end."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.daemons: List[Daemon] = []

    def start(self, *args: str, socket_path: Optional[Path] = None) -> Daemon:
        """Starts ``latchkeyd --no-dbus ARGS`` (``--store memory`` unless ARGS name a store)
        on `socket_path`, by default the environment's default socket."""
        argv = ["--no-dbus", *args]
        if "--store" not in args:
            argv += ["--store", "memory"]
        if socket_path is not None:
            argv += ["--socket", str(socket_path)]
        daemon = Daemon(self.env, argv, socket_path or self.env.socket)
        self.daemons.append(daemon)
        return daemon

    def stop_all(self) -> None:
        """Stops every daemon still running; each must exit 0."""
        failures = []
        for daemon in self.daemons:
            status = daemon.stop()
            if status != 0:
                failures.append(f"latchkeyd exited {status}:\n{daemon.log}")
        self.daemons.clear()
        assert not failures, "\n".join(failures)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """A private home and XDG folders for one test."""
    return Env(tmp_path / "home")


@pytest.fixture
def harness(env: Env) -> Iterator[Harness]:
    """Starts daemons on demand; stops them after the test."""
    h = Harness(env)
    yield h
    h.stop_all()


@pytest.fixture
def daemon(harness: Harness) -> Daemon:
    """A `latchkeyd --store memory --no-dbus` on the environment's default socket."""
    return harness.start()


def socket_has_connection(listener: socket.socket) -> bool:
    """Whether a connection waits in `listener`'s queue (checked without waiting)."""
    listener.setblocking(False)
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


HANG = object()
"""A `FakeServer` reply that answers nothing and keeps the connection open."""


class CloseAfter(bytes):
    """A `FakeServer` reply sent just before the server closes the connection."""


Reply = Callable[[bytes], object]
"""What a `FakeServer` answers to one request line: bytes to send (then it reads the next
request), `CloseAfter(bytes)`, `None` to close the connection at once, or `HANG`."""


class FakeServer:
    """A stand-in for latchkeyd on a Unix socket of this user, answering as a test says:
    for the answers the real daemon never gives (garbage, huge lines, silence)."""

    def __init__(self, path: Path, reply: Reply) -> None:
        self.path = path
        self.reply = reply
        self.requests: List[bytes] = []
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(16)
        self._threads: List[threading.Thread] = []
        self._conns: List[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            if self._stop.is_set():
                conn.close()
                return
            self.connections += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while not self._stop.is_set():
                while b"\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                line, buffer = buffer.split(b"\n", 1)
                self.requests.append(line)
                answer = self.reply(line)
                if answer is None:
                    return
                if answer is HANG:
                    self._stop.wait(START_TIMEOUT)
                    return
                assert isinstance(answer, bytes)
                try:
                    conn.sendall(answer)
                except OSError:
                    return
                if isinstance(answer, CloseAfter):
                    return

    def close(self) -> None:
        """Stops serving: wakes the accepting thread with one last connection."""
        self._stop.set()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
            wake.connect(str(self.path))
        self._accepting.join(START_TIMEOUT)
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its thread
        for thread in self._threads:
            thread.join(START_TIMEOUT)
        self._listener.close()


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Callable[[Reply], FakeServer]]:
    """Starts `FakeServer`s in a private folder; closes them after the test."""
    servers: List[FakeServer] = []
    folder = private_dir(tmp_path / "fake")

    def start(reply: Reply) -> FakeServer:
        server = FakeServer(folder / f"fake-{len(servers)}.sock", reply)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
