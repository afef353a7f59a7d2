"""The records the daemon returns, read from JSON and checked field by field.

Each record is a frozen dataclass built by its ``from_wire`` function, which raises
`ProtocolError` for a missing or mistyped field (fields this package does not know are
ignored, so a newer daemon's additions do not break it). Times are timezone-aware UTC
`datetime` values; names of kinds and states stay the protocol's strings (``"api_key"``,
``"valid"``...). The only secret, `GetResult.secret`, is a `Secret`, so the `repr` of
every record is safe to log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, List, Mapping, Optional, Tuple

from .errors import ProtocolError
from .secret import Secret

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC `datetime` (fractions beyond microseconds are
    dropped); `ValueError` if it is not one."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    # A leap second (60) is read as second 59: datetime has no room for it.
    leap = second == 60
    moment = datetime(
        year, month, day, hour, minute, 59 if leap else second, int(fraction), timezone.utc
    )
    if match.group(9):
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        moment -= offset if match.group(9) == "+" else -offset
    return moment


class _Fields:
    """Reads typed fields out of one JSON object, naming the record in errors."""

    def __init__(self, value: Any, record: str) -> None:
        if not isinstance(value, dict):
            raise ProtocolError(f"{record} is not an object")
        self.value: Mapping[str, Any] = value
        self.record = record

    def _bad(self, name: str, what: str) -> ProtocolError:
        return ProtocolError(f"{self.record}.{name} is missing or not {what}")

    def text(self, name: str) -> str:
        value = self.value.get(name)
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        return value

    def opt_text(self, name: str) -> Optional[str]:
        value = self.value.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        return value

    def flag(self, name: str, default: Optional[bool] = None) -> bool:
        value = self.value.get(name, default)
        if not isinstance(value, bool):
            raise self._bad(name, "a boolean")
        return value

    def opt_flag(self, name: str) -> Optional[bool]:
        value = self.value.get(name)
        if value is None:
            return None
        return self.flag(name)

    def count(self, name: str) -> int:
        value = self.value.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._bad(name, "a count")
        return value

    def texts(self, name: str) -> Tuple[str, ...]:
        value = self.value.get(name, [])
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(name, "a list of strings")
        return tuple(value)

    def time(self, name: str) -> datetime:
        text = self.text(name)
        try:
            return parse_time(text)
        except ValueError:
            pass
        raise self._bad(name, "a timestamp")

    def opt_time(self, name: str) -> Optional[datetime]:
        if self.value.get(name) is None:
            return None
        return self.time(name)

    def array(self, name: str) -> List[Any]:
        value = self.value.get(name)
        if not isinstance(value, list):
            raise self._bad(name, "a list")
        return value


@dataclass(frozen=True)
class GetResult:
    """A usable secret and what is known about it. Never a refresh token."""

    secret: Secret
    """The access token, API key or password; `secret.expose()` is the value."""
    kind: str
    """``oauth2``, ``api_key`` or ``password``."""
    token_type: Optional[str]
    """The token type of an OAuth token, usually ``Bearer``."""
    username: Optional[str]
    """The username of a password entry."""
    expires_at: Optional[datetime]
    """When the access token expires (OAuth), if known."""
    scopes: Tuple[str, ...]
    """The scopes the token was granted."""

    @staticmethod
    def from_wire(value: Any) -> GetResult:
        """Reads a `get` result."""
        f = _Fields(value, "result")
        return GetResult(
            secret=Secret(f.text("secret")),
            kind=f.text("kind"),
            token_type=f.opt_text("token_type"),
            username=f.opt_text("username"),
            expires_at=f.opt_time("expires_at"),
            scopes=f.texts("scopes"),
        )


@dataclass(frozen=True)
class Entry:
    """Everything about an entry except its secrets (what `status` and `list` show)."""

    service: str
    account: str
    kind: str
    """``oauth2``, ``api_key`` or ``password``."""
    scopes: Tuple[str, ...]
    expires_at: Optional[datetime]
    has_refresh_token: bool
    """Whether the daemon holds a refresh token (the token itself never leaves it)."""
    provider: Optional[str]
    created_at: datetime
    updated_at: datetime
    last_used_at: Optional[datetime]
    last_refreshed_at: Optional[datetime]
    state: str
    """``valid``, ``expiring``, ``expired`` or ``needs_login``."""
    unsaved: bool
    """A refreshed bundle waits to be saved to the store."""

    @staticmethod
    def from_wire(value: Any) -> Entry:
        """Reads one `Metadata` record."""
        f = _Fields(value, "entry")
        return Entry(
            service=f.text("service"),
            account=f.text("account"),
            kind=f.text("kind"),
            scopes=f.texts("scopes"),
            expires_at=f.opt_time("expires_at"),
            has_refresh_token=f.flag("has_refresh_token", False),
            provider=f.opt_text("provider"),
            created_at=f.time("created_at"),
            updated_at=f.time("updated_at"),
            last_used_at=f.opt_time("last_used_at"),
            last_refreshed_at=f.opt_time("last_refreshed_at"),
            state=f.text("state"),
            unsaved=f.flag("unsaved", False),
        )


@dataclass(frozen=True)
class DaemonInfo:
    """The daemon part of `status`."""

    version: str
    protocol: int
    store: str
    """The store in use: ``secret-service``, ``file``, ``memory``..."""
    persistent: bool
    """Whether entries survive a restart of the daemon."""
    locked: Optional[bool]
    """Whether the store is locked now, where it can tell."""
    entries: int
    unlock_with: Optional[str]
    """``nothing``, ``keychain``, ``passphrase`` or ``new_passphrase``."""
    store_reason: Optional[str]

    @staticmethod
    def from_wire(value: Any) -> DaemonInfo:
        """Reads `status`'s `daemon` record."""
        f = _Fields(value, "daemon")
        return DaemonInfo(
            version=f.text("version"),
            protocol=f.count("protocol"),
            store=f.text("store"),
            persistent=f.flag("persistent"),
            locked=f.opt_flag("locked"),
            entries=f.count("entries"),
            unlock_with=f.opt_text("unlock_with"),
            store_reason=f.opt_text("store_reason"),
        )


@dataclass(frozen=True)
class Status:
    """The daemon's state and the entries that matched `status`'s filters."""

    daemon: DaemonInfo
    entries: Tuple[Entry, ...]

    @staticmethod
    def from_wire(value: Any) -> Status:
        """Reads a `status` result."""
        f = _Fields(value, "result")
        return Status(
            daemon=DaemonInfo.from_wire(f.value.get("daemon")),
            entries=entries_from_wire(f.array("entries")),
        )


@dataclass(frozen=True)
class VersionInfo:
    """The daemon's version and protocol."""

    version: str
    protocol: int

    @staticmethod
    def from_wire(value: Any) -> VersionInfo:
        """Reads a `version` result."""
        f = _Fields(value, "result")
        return VersionInfo(version=f.text("version"), protocol=f.count("protocol"))


@dataclass(frozen=True)
class LockState:
    """The store's state after `unlock` or `lock`."""

    store: str
    locked: Optional[bool]

    @staticmethod
    def from_wire(value: Any) -> LockState:
        """Reads an `unlock` or `lock` result."""
        f = _Fields(value, "result")
        return LockState(store=f.text("store"), locked=f.opt_flag("locked"))


def entries_from_wire(values: List[Any]) -> Tuple[Entry, ...]:
    """Reads a list of `Metadata` records."""
    return tuple(Entry.from_wire(v) for v in values)


def field(value: Any, name: str, record: str = "result") -> Any:
    """One member of a result object; `ProtocolError` if the result is not an object."""
    return _Fields(value, record).value.get(name)
