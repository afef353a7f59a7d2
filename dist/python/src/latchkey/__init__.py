"""A client for latchkeyd, the per-user credential daemon, over its Unix socket.

    from latchkey import Client, NotFound

    with Client() as latchkey:
        token = latchkey.get("github", scopes=["repo"], min_valid=60)
        headers = {"Authorization": f"Bearer {token.secret.expose()}"}

Before it sends anything, the client checks that the socket's folder, the socket and the
process listening on it belong to this user, as the Rust client does; otherwise it raises
`UntrustedDaemon`. Errors the daemon reports are raised as one class per `data.kind`
(`NotFound`, `AuthenticationRequired`, `InsufficientScope`, `Locked`, `RefreshFailed`,
...), all `LatchkeyError` with a `kind` and a `message`. Secrets come back as `Secret`,
which never shows its value in `repr`, `str` or f-strings; `expose()` returns it.

Standard library only; Python 3.9 or later; Linux and macOS.
"""

from .client import DEFAULT_TIMEOUT, PROTOCOL_VERSION, Client
from .errors import (
    CLIENT_KINDS,
    DAEMON_ERRORS,
    AuthenticationRequired,
    BackendUnavailable,
    ConnectionClosed,
    ConnectionFailed,
    DaemonError,
    DaemonNotRunning,
    Internal,
    InsufficientScope,
    InvalidRequest,
    LatchkeyError,
    Locked,
    LoginFailed,
    NotConfirmed,
    NotFound,
    PermissionDenied,
    ProtocolError,
    RefreshFailed,
    Timeout,
    TooLarge,
    UntrustedDaemon,
    VersionMismatch,
    WrongPassphrase,
)
from .models import DaemonInfo, Entry, GetResult, LockState, Status, VersionInfo
from .paths import default_socket_path
from .secret import Secret
from .wire import MAX_RESPONSE

__version__ = "0.1.0"

__all__ = [
    "AuthenticationRequired",
    "BackendUnavailable",
    "CLIENT_KINDS",
    "Client",
    "ConnectionClosed",
    "ConnectionFailed",
    "DAEMON_ERRORS",
    "DEFAULT_TIMEOUT",
    "DaemonError",
    "DaemonInfo",
    "DaemonNotRunning",
    "Entry",
    "GetResult",
    "InsufficientScope",
    "Internal",
    "InvalidRequest",
    "LatchkeyError",
    "LockState",
    "Locked",
    "LoginFailed",
    "MAX_RESPONSE",
    "NotConfirmed",
    "NotFound",
    "PROTOCOL_VERSION",
    "PermissionDenied",
    "ProtocolError",
    "RefreshFailed",
    "Secret",
    "Status",
    "Timeout",
    "TooLarge",
    "UntrustedDaemon",
    "VersionInfo",
    "VersionMismatch",
    "WrongPassphrase",
    "default_socket_path",
]
