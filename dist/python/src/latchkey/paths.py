"""Where latchkeyd's socket is, found exactly as the Rust client and the daemon find it.

`$LATCHKEY_SOCKET` wins. Otherwise the socket is ``latchkey.sock`` in a folder only this
user can create: ``$XDG_RUNTIME_DIR/latchkey``; without that variable,
``$XDG_STATE_HOME/latchkey`` (when absolute), by default ``~/.local/state/latchkey``. On
macOS the fallback is ``latchkey`` in the per-user private temporary folder the system
keeps (``confstr(_CS_DARWIN_USER_TEMP_DIR)``), else in ``$TMPDIR``. Never a predictable
name in a shared folder such as ``/tmp``. Empty variables count as unset.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Optional

SOCKET_ENV = "LATCHKEY_SOCKET"
"""The variable that names the socket for the daemon and every client."""

RUNTIME_DIR_ENV = "XDG_RUNTIME_DIR"
"""The per-user runtime folder variable (freedesktop base directory spec)."""

_CS_DARWIN_USER_TEMP_DIR = 65537
"""macOS's `confstr` name for the per-user temporary folder (from <unistd.h>)."""


def default_socket_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """The socket to use: `$LATCHKEY_SOCKET`, else ``latchkey.sock`` in `runtime_dir`.

    `environ` defaults to `os.environ`.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(SOCKET_ENV)
    if explicit:
        return explicit
    return os.path.join(runtime_dir(env), "latchkey.sock")


def runtime_dir(environ: Optional[Mapping[str, str]] = None) -> str:
    """The per-user folder that holds the socket (see the module documentation)."""
    env = os.environ if environ is None else environ
    runtime = env.get(RUNTIME_DIR_ENV)
    if runtime:
        return os.path.join(runtime, "latchkey")
    if sys.platform == "darwin":
        return os.path.join(_darwin_user_temp_dir() or env.get("TMPDIR") or "/tmp", "latchkey")
    state = env.get("XDG_STATE_HOME")
    if not (state and os.path.isabs(state)):
        home = env.get("HOME")
        # No home at all: a relative path that fails clearly at connect time rather than a
        # guess in a shared folder (as the Rust side does).
        state = os.path.join(home, ".local", "state") if home else ".latchkey-no-home"
    return os.path.join(state, "latchkey")


def _darwin_user_temp_dir() -> Optional[str]:
    """The system's per-user temporary folder on macOS, asked of the system itself so that
    a launchd agent, a Terminal and an SSH session agree on one socket."""
    try:
        folder = os.confstr(_CS_DARWIN_USER_TEMP_DIR)
    except (ValueError, OSError):
        return None
    if not folder or not os.path.isabs(folder):
        return None
    return folder
