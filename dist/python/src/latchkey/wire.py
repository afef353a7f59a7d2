"""One checked connection to latchkeyd speaking JSON-RPC 2.0, one object per line.

`Connection.open` runs the trust checks of `latchkey.trust` around `connect` and sends
nothing until they pass. `Connection.call` writes one request line and reads its answer
within one deadline, from a stream capped at `max_response` bytes per line. Anything
unexpected in the answer (not UTF-8, not JSON, not an object, another id, no result and
no error, a line too long) is a `ProtocolError`, whose message never quotes what was
received; after it, or after a timeout, the connection is closed, since the next line on
it could no longer be matched to its request.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from typing import Any, Dict, Optional

from . import trust
from .errors import (
    ConnectionClosed,
    ConnectionFailed,
    DaemonNotRunning,
    ProtocolError,
    Timeout,
    from_wire,
)
from .secret import Secret

MAX_RESPONSE = 16 * 1024 * 1024
"""The longest answer line accepted by default, in bytes (a `list` of many entries is
large); the Rust client uses the same."""

_READ_CHUNK = 64 * 1024


def _encode_secret(value: Any) -> Any:
    """`json.dumps` hook: a `Secret` goes on the wire as its value, nothing else unknown
    does."""
    if isinstance(value, Secret):
        return value.expose()
    raise TypeError(f"cannot send a {type(value).__name__} to latchkeyd")


def encode_request(request_id: int, method: str, params: Optional[Dict[str, Any]]) -> bytes:
    """The request line for `method` with `params` (left out when `None`)."""
    request: Dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        request["params"] = params
    text = json.dumps(
        request,
        ensure_ascii=False,
        separators=(",", ":"),
        default=_encode_secret,
        allow_nan=False,
    )
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        pass
    # Raised outside the handler: the encoder's error holds the whole line, secrets
    # included, and must not stay reachable as this error's context.
    raise ValueError("a value for latchkeyd is not valid Unicode text (it holds a lone surrogate)")


_NOT_JSON = object()
_NOT_UTF8 = object()


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def decode_response(line: bytes, request_id: int) -> Any:
    """The result of the answer `line` to request `request_id`; raises the daemon's error
    as a `DaemonError`, or `ProtocolError`."""
    # The errors of decoding hold the whole answer (a secret, perhaps): the ones raised here
    # are raised outside their handlers, so those are not kept as their context.
    envelope: Any = _NOT_JSON
    try:
        envelope = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        envelope = _NOT_UTF8
    except (ValueError, RecursionError):
        pass
    if envelope is _NOT_UTF8:
        raise ProtocolError("the answer is not UTF-8")
    if envelope is _NOT_JSON:
        raise ProtocolError("the answer is not JSON")
    if not isinstance(envelope, dict):
        raise ProtocolError("the answer is not a JSON object")
    if envelope.get("jsonrpc") != "2.0":
        raise ProtocolError("the answer is not JSON-RPC 2.0")
    if "id" not in envelope:
        raise ProtocolError("the answer has no id")
    answer_id = envelope["id"]
    error = envelope.get("error")
    # An error about a request the daemon could not read (too large, say) carries a null
    # id; requests go one at a time, so it is ours.
    ours = (type(answer_id) is int and answer_id == request_id) or (
        answer_id is None and error is not None
    )
    if not ours:
        raise ProtocolError("the answer is not for the request sent")
    if error is not None:
        raise from_wire(error)
    if "result" not in envelope:
        raise ProtocolError("the answer has neither result nor error")
    return envelope["result"]


class Connection:
    """A connected, checked socket to latchkeyd. Not thread-safe: `Client` serializes."""

    def __init__(self, sock: socket.socket, path: str, max_response: int) -> None:
        """Wraps `sock`, already connected to `path` and checked."""
        self._sock: Optional[socket.socket] = sock
        self.path = path
        self._max_response = max_response
        self._buffer = bytearray()
        self._scanned = 0
        """Bytes at the front of `_buffer` known to hold no newline."""
        self._next_id = 1
        self.calls = 0
        """How many calls were answered on this connection."""

    @classmethod
    def open(cls, path: str, timeout: float, max_response: int = MAX_RESPONSE) -> Connection:
        """Checks the socket's folder and file, connects within `timeout` seconds and
        checks the listener; nothing is sent."""
        if not hasattr(socket, "AF_UNIX"):
            raise ConnectionFailed("Unix sockets are not available on this platform")
        folder = os.path.dirname(path) or "."
        trust.check_private_dir(folder, path)
        trust.check_socket_file(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except (FileNotFoundError, ConnectionRefusedError):
                raise DaemonNotRunning(path) from None
            except socket.timeout:
                raise Timeout(f"latchkeyd did not accept a connection on {path} in time") from None
            except OSError as error:
                raise ConnectionFailed(f"cannot connect to {path}: {error.strerror}") from None
            trust.check_peer(sock, path)
        except BaseException:
            sock.close()
            raise
        return cls(sock, path, max_response)

    @property
    def closed(self) -> bool:
        """Whether the connection was closed."""
        return self._sock is None

    def close(self) -> None:
        """Closes the socket; later calls need a new connection."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer = bytearray()
                self._scanned = 0

    def is_stale(self) -> bool:
        """Whether the daemon has closed this connection (its idle timeout, say) or sent
        something unasked; checked without waiting before a connection is reused."""
        if self._sock is None or self._buffer:
            return True
        try:
            # poll, not select: select fails for descriptors past FD_SETSIZE.
            poller = select.poll()
            poller.register(self._sock, select.POLLIN)
            ready = poller.poll(0)
        except (OSError, ValueError):
            return True
        # Readable between calls means end of stream, or bytes nobody asked for.
        return bool(ready)

    def call(self, method: str, params: Optional[Dict[str, Any]], timeout: float) -> Any:
        """Sends one request and returns its result within `timeout` seconds overall.

        Raises `ConnectionClosed` when the daemon hung up before the first byte of an answer
        (the caller may reconnect), `Timeout`, `ProtocolError`, `ConnectionFailed`, or the
        daemon's error. Every error but the daemon's closes the connection.
        """
        if self._sock is None:
            raise ConnectionClosed()
        request_id = self._next_id
        self._next_id += 1
        line = encode_request(request_id, method, params)
        deadline = time.monotonic() + timeout
        try:
            self._send(line, deadline)
            answer = self._read_line(deadline)
            result = decode_response(answer, request_id)
        except (ConnectionClosed, Timeout, ProtocolError, ConnectionFailed):
            self.close()
            raise
        self.calls += 1
        return result

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("latchkeyd did not answer in time")
        return left

    def _send(self, data: bytes, deadline: float) -> None:
        assert self._sock is not None
        view = memoryview(data)
        while view:
            self._sock.settimeout(self._remaining(deadline))
            try:
                sent = self._sock.send(view)
            except socket.timeout:
                raise Timeout("latchkeyd did not take the request in time") from None
            except (BrokenPipeError, ConnectionResetError):
                # The daemon hung up first (for example: it refused this user, or its idle
                # timeout closed the connection).
                raise ConnectionClosed() from None
            except OSError as error:
                raise ConnectionFailed(f"cannot write to latchkeyd: {error.strerror}") from None
            view = view[sent:]

    def _read_line(self, deadline: float) -> bytes:
        assert self._sock is not None
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            self._scanned = len(self._buffer) if end < 0 else 0
            if end > self._max_response or (end < 0 and len(self._buffer) > self._max_response):
                raise ProtocolError(f"the answer exceeds {self._max_response} bytes")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            self._sock.settimeout(self._remaining(deadline))
            try:
                chunk = self._sock.recv(_READ_CHUNK)
            except socket.timeout:
                raise Timeout("latchkeyd did not answer in time") from None
            except ConnectionResetError:
                chunk = b""
            except OSError as error:
                raise ConnectionFailed(f"cannot read from latchkeyd: {error.strerror}") from None
            if not chunk:
                if self._buffer:
                    raise ProtocolError("the answer ended in the middle of a line")
                raise ConnectionClosed()
            self._buffer += chunk
