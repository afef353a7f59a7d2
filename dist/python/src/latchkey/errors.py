"""Every error this package raises, with a stable `kind` to branch on.

Errors the daemon reports are `DaemonError` subclasses, one per `data.kind` of the
protocol (`NotFound`, `Locked`, `AuthenticationRequired`, ...); a kind this package does
not know yet (a newer daemon) comes back as a plain `DaemonError` with that kind. Errors
found on this side have kinds of their own, listed in `CLIENT_KINDS`, which the daemon
never sends: `untrusted_daemon` (nothing was sent), `not_running`, `protocol_error`,
`timeout`, `connection_closed`, `connection_failed`, `version_mismatch`.

No error carries a secret: the daemon's messages never repeat what a client sent, and
this side never quotes the bytes it received. Text from the daemon is escaped in
`str(error)` (control and invisible characters become ``\\u{..}``); the raw text stays in
`message`.
"""

from __future__ import annotations

import sys

from typing import Any, Dict, Mapping, Optional, Tuple, Type

from .text import escape

if sys.platform == "darwin":
    _START_HINT = "`latchkeyd` or `launchctl kickstart gui/$(id -u)/dev.latchkey.latchkeyd`"
elif sys.platform.startswith("linux"):
    _START_HINT = "`latchkeyd` or `systemctl --user start latchkeyd`"
else:
    _START_HINT = "`latchkeyd`"

CLIENT_KINDS = frozenset(
    [
        "untrusted_daemon",
        "not_running",
        "protocol_error",
        "timeout",
        "connection_closed",
        "connection_failed",
        "version_mismatch",
    ]
)
"""Kinds of the errors found on this side; the daemon never sends them."""


class LatchkeyError(Exception):
    """The base of every error here: a stable `kind` and a `message` for people."""

    kind: str = "error"

    def __init__(self, message: str, *, kind: Optional[str] = None) -> None:
        """An error with `message`; `kind` overrides the class's kind."""
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.message = message

    def __str__(self) -> str:
        """The message, with characters unsafe to show escaped."""
        return escape(self.message)

    def __repr__(self) -> str:
        """The class, kind and escaped message."""
        return f"{type(self).__name__}(kind={self.kind!r}, message={str(self)!r})"


# --- found on this side ----------------------------------------------------------------


class UntrustedDaemon(LatchkeyError):
    """What answers as latchkeyd is not this user's own; nothing was sent to it.

    `path` is the socket; the message names the folder, file or process at fault and its
    owner.
    """

    kind = "untrusted_daemon"

    def __init__(self, message: str, *, path: str) -> None:
        """Refusal of the socket at `path`, for the reason in `message`."""
        super().__init__(f"refusing to talk to latchkeyd: {message}")
        self.path = path


class DaemonNotRunning(LatchkeyError):
    """Nothing listens on the socket (or its folder does not exist)."""

    kind = "not_running"

    def __init__(self, path: str) -> None:
        """Nothing listens on `path`."""
        super().__init__(
            f"latchkeyd is not running (nothing listens on {path}); start it with {_START_HINT}"
        )
        self.path = path


class ProtocolError(LatchkeyError):
    """The daemon's answer could not be understood: not JSON, too large, not the reply to
    the request sent, or a result of the wrong shape. The connection is closed."""

    kind = "protocol_error"

    def __init__(self, problem: str) -> None:
        """`problem` says what was wrong, never what was received."""
        super().__init__(f"latchkeyd sent a response this client does not understand: {problem}")


class Timeout(LatchkeyError, TimeoutError):
    """The daemon did not answer in time. The connection is closed."""

    kind = "timeout"


class ConnectionClosed(LatchkeyError):
    """The daemon closed the connection without answering (for example, it refused this
    user, or it stopped)."""

    kind = "connection_closed"

    def __init__(self) -> None:
        """The daemon hung up."""
        super().__init__("latchkeyd closed the connection without answering")


class ConnectionFailed(LatchkeyError):
    """The socket could not be used for a reason other than the above (an I/O error)."""

    kind = "connection_failed"


class VersionMismatch(LatchkeyError):
    """The daemon speaks another protocol version."""

    kind = "version_mismatch"

    def __init__(self, daemon: int, client: int) -> None:
        """The daemon speaks `daemon`, this client `client`."""
        super().__init__(
            f"latchkeyd speaks protocol {daemon}, this client speaks {client}; "
            "restart latchkeyd after upgrading"
        )
        self.daemon = daemon
        self.client = client


# --- reported by the daemon ------------------------------------------------------------


class DaemonError(LatchkeyError):
    """An error the daemon reported: `kind` is its `data.kind`, `code` the JSON-RPC code,
    `data` the whole `data` object (hint, retryable, missing_scopes, ...)."""

    def __init__(self, kind: str, message: str, code: int, data: Mapping[str, Any]) -> None:
        """Built by `from_wire`; `data` holds at least `kind`."""
        super().__init__(message, kind=kind)
        self.code = code
        self.data: Dict[str, Any] = dict(data)

    @property
    def hint(self) -> Optional[str]:
        """A suggestion for people (the command that fixes it), if the daemon gave one."""
        return _opt_str(self.data.get("hint"))

    def __str__(self) -> str:
        """The message and, if there is one, the hint (escaped)."""
        hint = self.hint
        text = self.message if hint is None else f"{self.message} ({hint})"
        return escape(text)


class NotFound(DaemonError):
    """No entry for that service and account."""


class AuthenticationRequired(DaemonError):
    """The entry cannot serve until the user logs in again or stores a new token."""

    @property
    def login_url(self) -> Optional[str]:
        """For a configured provider: a URL that starts a login when opened."""
        return _opt_str(self.data.get("login_url"))


class InsufficientScope(DaemonError):
    """The entry was not granted every scope asked for."""

    @property
    def missing_scopes(self) -> Tuple[str, ...]:
        """The scopes asked for that the entry lacks."""
        scopes = self.data.get("missing_scopes")
        if not isinstance(scopes, list):
            return ()
        return tuple(s for s in scopes if isinstance(s, str))


class Locked(DaemonError):
    """The store is locked: `latchkey unlock` (or the desktop login) opens it."""

    @property
    def unlock_with(self) -> Optional[str]:
        """For a store that takes a passphrase: `passphrase` or `new_passphrase`."""
        return _opt_str(self.data.get("unlock_with"))


class BackendUnavailable(DaemonError):
    """The keychain cannot be reached."""


class _Retryable(DaemonError):
    @property
    def retryable(self) -> bool:
        """Whether trying again later may succeed."""
        return self.data.get("retryable") is True


class RefreshFailed(_Retryable):
    """Refreshing the token failed and the old one is no longer valid; see `retryable`."""


class InvalidRequest(DaemonError):
    """The request was malformed or its values were refused (a name with control
    characters, say)."""


class PermissionDenied(DaemonError):
    """The daemon does not allow this (a `latchkey:` service belongs to the daemon)."""


class TooLarge(DaemonError):
    """The request exceeded the daemon's size limit."""


class Internal(DaemonError):
    """Something went wrong inside the daemon."""


class LoginFailed(_Retryable):
    """A login did not complete; see `retryable`."""


class WrongPassphrase(_Retryable):
    """The passphrase was wrong, or too many were wrong in a row (the hint says how long
    to wait)."""


class NotConfirmed(DaemonError):
    """The entry is served only after the user allows this program in a desktop prompt,
    and that did not happen (denied, not answered in time, or no notification server)."""


DAEMON_ERRORS: Dict[str, Type[DaemonError]] = {
    "not_found": NotFound,
    "authentication_required": AuthenticationRequired,
    "insufficient_scope": InsufficientScope,
    "locked": Locked,
    "backend_unavailable": BackendUnavailable,
    "refresh_failed": RefreshFailed,
    "invalid_request": InvalidRequest,
    "permission_denied": PermissionDenied,
    "too_large": TooLarge,
    "internal": Internal,
    "login_failed": LoginFailed,
    "wrong_passphrase": WrongPassphrase,
    "not_confirmed": NotConfirmed,
}
"""The class of each kind the protocol defines."""


def from_wire(error: Any) -> DaemonError:
    """The exception for a JSON-RPC `error` member; `ProtocolError` if it has the wrong
    shape (raised, not returned)."""
    if not isinstance(error, dict):
        raise ProtocolError("the error is not an object")
    code, message, data = error.get("code"), error.get("message"), error.get("data")
    if not isinstance(code, int) or isinstance(code, bool):
        raise ProtocolError("the error has no numeric code")
    if not isinstance(message, str):
        raise ProtocolError("the error has no message")
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ProtocolError("the error has no data.kind")
    kind = data["kind"]
    cls = DAEMON_ERRORS.get(kind, DaemonError)
    return cls(kind, message, code, data)


def _opt_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None
