"""Escaping text that came from another process before it is shown to people.

The same rule as latchkey's Rust side (`latchkey_proto::text`): control characters,
bidirectional controls, zero-width characters and line/paragraph separators are replaced
by their ``\\u{..}`` escape, so a message from the daemon cannot clear a terminal, reorder
what is around it or pose as another name.
"""

from __future__ import annotations

import unicodedata

_BIDI = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C])
_ZERO_WIDTH = frozenset([0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF])
_SEPARATORS = frozenset([0x2028, 0x2029])
_HIDDEN = _BIDI | _ZERO_WIDTH | _SEPARATORS


def unsafe_to_show(char: str) -> bool:
    """Whether `char` must be escaped before it reaches a terminal."""
    return ord(char) in _HIDDEN or unicodedata.category(char) == "Cc"


def escape(text: str) -> str:
    """`text` with every character that is unsafe to show written as ``\\u{..}``."""
    if not any(unsafe_to_show(c) for c in text):
        return text
    return "".join(f"\\u{{{ord(c):x}}}" if unsafe_to_show(c) else c for c in text)
