"""`Client`: the methods of latchkeyd's socket protocol as Python calls.

A client opens its connection on first use (or on `Client.connect`), after the checks of
`latchkey.trust`, and keeps it for later calls; one that the daemon has closed meanwhile
(its idle timeout is a minute) is noticed before the next request and replaced by a new,
checked one. A request is never sent twice: if the daemon goes away while answering, the
call fails with `ConnectionClosed`. Calls on one client are serialized by a lock, so
threads may share it. Every call has one deadline, `timeout` seconds, for writing the
request and reading its answer.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union

from .errors import ProtocolError, VersionMismatch
from .models import (
    Entry,
    GetResult,
    LockState,
    Status,
    VersionInfo,
    entries_from_wire,
    field,
)
from .paths import default_socket_path
from .secret import Secret
from .wire import MAX_RESPONSE, Connection

PROTOCOL_VERSION = 1
"""The protocol version this client speaks."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a call may take by default: a `get` may wait for the daemon to refresh a token
at its provider."""

T = TypeVar("T")

SecretLike = Union[str, Secret]
"""A secret given to the client: a plain `str` or a `Secret`."""

GRANT_VARIABLE = "LATCHKEY_GRANT"
"""The environment variable a `Client` takes its grant from when given none."""


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str")
    return value


def _secret(name: str, value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise TypeError(f"{name} must be a str or a Secret")


def _scopes(scopes: Iterable[str]) -> List[str]:
    if isinstance(scopes, (str, bytes)):
        raise TypeError("scopes must be a list of str, not one string")
    return [_text("each scope", s) for s in scopes]


def _seconds(name: str, value: Union[int, float, timedelta]) -> int:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be seconds (int) or a timedelta")
    if value < 0 or value != value:
        raise ValueError(f"{name} must not be negative")
    return int(value) if value == int(value) else int(value) + 1


def _removed(result: Any) -> bool:
    removed = field(result, "removed")
    if not isinstance(removed, bool):
        raise ProtocolError("result.removed is missing or not a boolean")
    return removed


def _entries(result: Any) -> Tuple[Entry, ...]:
    entries = field(result, "entries")
    if not isinstance(entries, list):
        raise ProtocolError("result.entries is missing or not a list")
    return entries_from_wire(entries)


def format_time(moment: datetime) -> str:
    """`moment` (timezone-aware) as RFC 3339 UTC, as the protocol writes times."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a time sent to latchkeyd must be timezone-aware")
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class Client:
    """A connection to latchkeyd over its Unix socket.

    ``Client()`` uses the default socket (`latchkey.paths.default_socket_path`:
    ``$LATCHKEY_SOCKET``, else ``$XDG_RUNTIME_DIR/latchkey/latchkey.sock``, else the
    per-user state folder); ``Client(path)`` uses that socket only. Before anything is
    sent the socket's folder, the socket and the listening process are checked to be this
    user's own (`UntrustedDaemon` otherwise). Use it as a context manager, or call
    `close`.

    With a grant (``grant=``, else ``$LATCHKEY_GRANT`` when it is set and not empty) every
    connection presents it with ``authenticate`` before its first call, as the CLI does:
    the connection may then only `get` what the grant allows (`PermissionDenied`
    otherwise, and for a grant that is not valid).
    """

    def __init__(
        self,
        socket_path: Union[str, "os.PathLike[str]", None] = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_response: int = MAX_RESPONSE,
        grant: Optional[SecretLike] = None,
    ) -> None:
        """A client for the socket at `socket_path` (default: the default socket); each
        call may take `timeout` seconds, and an answer line may be `max_response` bytes.
        `grant`: a grant token to present on every connection (default:
        ``$LATCHKEY_GRANT`` if set and not empty)."""
        self.path = os.fspath(socket_path) if socket_path is not None else default_socket_path()
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.timeout = float(timeout)
        if isinstance(max_response, bool) or not isinstance(max_response, int) or max_response < 1:
            raise ValueError("max_response must be a positive number of bytes")
        self.max_response = max_response
        if grant is None:
            grant = os.environ.get(GRANT_VARIABLE) or None
        self._grant: Optional[Secret] = _secret("grant", grant) if grant is not None else None
        if self._grant is not None and not self._grant:
            raise ValueError("grant must not be empty")
        self._connection: Optional[Connection] = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """The socket path, and whether a connection is open."""
        state = "open" if self._connection is not None else "not connected"
        grant = ", with a grant" if self._grant is not None else ""
        return f"Client(path={self.path!r}, {state}{grant})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Opens and checks the connection now (calls do so on first use)."""
        with self._lock:
            self._connected()

    def close(self) -> None:
        """Closes the connection; a later call opens a new one."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connected(self) -> Connection:
        connection = self._connection
        if connection is None or connection.is_stale():
            if connection is not None:
                connection.close()
            self._connection = None
            connection = Connection.open(self.path, self.timeout, self.max_response)
            if self._grant is not None:
                try:
                    connection.call("authenticate", {"grant": self._grant}, self.timeout)
                except BaseException:
                    connection.close()
                    raise
            self._connection = connection
        return connection

    def _call(
        self,
        method: str,
        params: Optional[Dict[str, Any]] = None,
        parse: Callable[[Any], T] = lambda result: result,
    ) -> T:
        """Runs one call and reads its result with `parse`. A result of the wrong shape
        (`ProtocolError`) drops the connection too: whatever sent it is not trusted to
        send the next answer right."""
        with self._lock:
            connection = self._connected()
            try:
                return parse(connection.call(method, params, self.timeout))
            except ProtocolError:
                connection.close()
                raise
            finally:
                if connection.closed:
                    self._connection = None

    # --- methods ----------------------------------------------------------------------

    def version(self) -> VersionInfo:
        """The daemon's version; `VersionMismatch` if it speaks another protocol."""
        info = self._call("version", parse=VersionInfo.from_wire)
        if info.protocol != PROTOCOL_VERSION:
            raise VersionMismatch(info.protocol, PROTOCOL_VERSION)
        return info

    def get(
        self,
        service: str,
        account: Optional[str] = None,
        scopes: Iterable[str] = (),
        min_valid: Union[int, float, timedelta, None] = None,
    ) -> GetResult:
        """The secret of an entry (refreshed by the daemon if it must be).

        `scopes`: the token must have been granted all of them (`InsufficientScope`
        otherwise). `min_valid` (seconds or a `timedelta`): the token must stay valid at
        least that long. Raises `NotFound`, `AuthenticationRequired`, `RefreshFailed`,
        `Locked`... as the daemon reports.
        """
        params: Dict[str, Any] = {"service": _text("service", service)}
        if account is not None:
            params["account"] = _text("account", account)
        wanted = _scopes(scopes)
        if wanted:
            params["scopes"] = wanted
        if min_valid is not None:
            params["min_valid_secs"] = _seconds("min_valid", min_valid)
        return self._call("get", params, GetResult.from_wire)

    def set_api_key(self, service: str, key: SecretLike, *, account: Optional[str] = None) -> Entry:
        """Stores an API key; returns the entry's metadata."""
        return self.set_bundle(
            service, {"kind": "api_key", "key": _secret("key", key)}, account=account
        )

    def set_password(
        self,
        service: str,
        username: str,
        password: SecretLike,
        *,
        account: Optional[str] = None,
    ) -> Entry:
        """Stores a username and password; returns the entry's metadata."""
        bundle = {
            "kind": "password",
            "username": _text("username", username),
            "password": _secret("password", password),
        }
        return self.set_bundle(service, bundle, account=account)

    def set_oauth2(
        self,
        service: str,
        access_token: SecretLike,
        *,
        account: Optional[str] = None,
        refresh_token: Optional[SecretLike] = None,
        token_type: Optional[str] = None,
        expires_at: Optional[datetime] = None,
        expires_in: Union[int, float, timedelta, None] = None,
        scopes: Iterable[str] = (),
        id_token: Optional[SecretLike] = None,
        provider: Optional[str] = None,
    ) -> Entry:
        """Stores an OAuth 2.0 token bundle. The refresh token stays inside the daemon,
        which refreshes the access token at `provider` (a configured provider) when it
        expires."""
        bundle: Dict[str, Any] = {
            "kind": "oauth2",
            "access_token": _secret("access_token", access_token),
            "scopes": _scopes(scopes),
        }
        if refresh_token is not None:
            bundle["refresh_token"] = _secret("refresh_token", refresh_token)
        if token_type is not None:
            bundle["token_type"] = _text("token_type", token_type)
        if expires_at is not None:
            if not isinstance(expires_at, datetime):
                raise TypeError("expires_at must be a datetime")
            bundle["expires_at"] = format_time(expires_at)
        if expires_in is not None:
            bundle["expires_in"] = _seconds("expires_in", expires_in)
        if id_token is not None:
            bundle["id_token"] = _secret("id_token", id_token)
        if provider is not None:
            bundle["provider"] = _text("provider", provider)
        return self.set_bundle(service, bundle, account=account)

    def set_bundle(
        self, service: str, bundle: Mapping[str, Any], *, account: Optional[str] = None
    ) -> Entry:
        """Stores a credential given as the protocol's bundle object (``{"kind":
        "api_key", "key": ...}``, ``{"kind": "password", ...}``, ``{"kind": "oauth2",
        ...}``); values may be `Secret`. Returns the entry's metadata."""
        if not isinstance(bundle, Mapping):
            raise TypeError("bundle must be a mapping")
        params: Dict[str, Any] = {"service": _text("service", service), "bundle": dict(bundle)}
        if account is not None:
            params["account"] = _text("account", account)
        return self._call("set", params, lambda r: Entry.from_wire(field(r, "entry")))

    def clear(self, service: str, account: Optional[str] = None) -> bool:
        """Removes an entry; `True` if it existed."""
        params: Dict[str, Any] = {"service": _text("service", service)}
        if account is not None:
            params["account"] = _text("account", account)
        return self._call("clear", params, _removed)

    def status(self, service: Optional[str] = None, account: Optional[str] = None) -> Status:
        """The daemon's state and the entries of `service` and `account` (all by
        default)."""
        params: Dict[str, Any] = {}
        if service is not None:
            params["service"] = _text("service", service)
        if account is not None:
            params["account"] = _text("account", account)
        return self._call("status", params, Status.from_wire)

    def list(self) -> Tuple[Entry, ...]:
        """Every entry's metadata (never a secret)."""
        return self._call("list", parse=_entries)

    def unlock(self, passphrase: Optional[SecretLike] = None, *, create: bool = False) -> LockState:
        """Unlocks the daemon's store: a passphrase store with `passphrase` (`create`
        chooses it when none exists yet), a keychain with none (it may show its own
        prompt). Raises `WrongPassphrase` for a wrong one."""
        params: Dict[str, Any] = {}
        if passphrase is not None:
            params["passphrase"] = _secret("passphrase", passphrase)
        if create:
            params["create"] = True
        return self._call("unlock", params, LockState.from_wire)

    def lock(self) -> LockState:
        """Locks the daemon's store: no secret is served until the next unlock."""
        return self._call("lock", parse=LockState.from_wire)
