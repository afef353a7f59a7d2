"""A string that holds a secret value and never shows it.

`Secret` wraps an access token, API key or password. Its `repr`, `str` and format
output name only its length, so a secret that reaches a log line, a traceback or an
f-string shows up as ``<redacted, N chars>``; the value itself comes out only through
`Secret.expose`, called where it is really needed (an HTTP header, a child's environment).

Python strings cannot be wiped from memory, so unlike the Rust client's secret this one
does not zero its bytes when dropped.
"""

from __future__ import annotations

import hmac
from typing import NoReturn


class Secret:
    """A secret string: redacted in `repr`, `str` and formatting; read with `expose`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Wraps `value`, which must be a `str`."""
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def expose(self) -> str:
        """The secret value. The caller decides where it may go; never log it."""
        return self._value

    def __len__(self) -> int:
        """Length in characters, safe to show."""
        return len(self._value)

    def __bool__(self) -> bool:
        """Whether the secret is non-empty."""
        return bool(self._value)

    def __repr__(self) -> str:
        """``Secret(<redacted, N chars>)``: never the value."""
        return f"Secret(<redacted, {len(self._value)} chars>)"

    def __str__(self) -> str:
        """``<redacted, N chars>``: use `expose` for the value."""
        return f"<redacted, {len(self._value)} chars>"

    def __format__(self, spec: str) -> str:
        """Formats the redacted text, so ``f"{secret}"`` never shows the value."""
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        """Equal to another `Secret` with the same value (compared in constant time)."""
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(
            self._value.encode("utf-8", "surrogatepass"),
            other._value.encode("utf-8", "surrogatepass"),
        )

    def __hash__(self) -> int:
        """Hashable like its value, so equal secrets hash alike."""
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        """Refuses pickling: a pickle would write the value in the clear."""
        raise TypeError("a Secret cannot be pickled; pickle secret.expose() deliberately")
