"""Whether the socket, its folder and the process listening on it are this user's own.

The same checks as the Rust client (`latchkey_paths::check_private_dir` and the peer
check in `latchkey-client`), made before a single byte is sent:

- the socket's folder belongs to this user and neither group nor others may write into
  it, and every folder above it, as named and as reached through links, belongs to root
  or this user and is not writable by others unless it is sticky (``/tmp``); that is
  OpenSSH's rule for ``authorized_keys``: whoever can rename a folder on the way could
  swap what is inside it;
- the socket file belongs to this user (the Rust client leaves this to the two other
  checks; it costs one `stat`);
- the process listening on the socket runs as this user, by the kernel's peer
  credentials of the connected socket: ``SO_PEERCRED`` on Linux, ``LOCAL_PEERCRED`` on
  macOS and FreeBSD. Where neither exists the connection is refused.

Every refusal is an `UntrustedDaemon`. A folder that does not exist means no daemon
(`DaemonNotRunning`), as in the Rust client.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys
from pathlib import PurePosixPath
from typing import Iterator

from .errors import DaemonNotRunning, UntrustedDaemon

_WRITABLE_BY_OTHERS = 0o022


def describe_user(uid: int) -> str:
    """``user NAME (uid N)``, or ``uid N`` when the system knows no plain name for it."""
    import pwd  # Unix only: imported here so that importing the package works anywhere

    try:
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid {uid}"
    # A name is shown to people: keep it plain.
    if name and all(c.isascii() and (c.isalnum() or c in "._-$") for c in name):
        return f"user {name} (uid {uid})"
    return f"uid {uid}"


def _ancestors(path: str) -> Iterator[str]:
    """The folders above `path`, nearest first, up to ``/`` (``..`` kept as named)."""
    for parent in PurePosixPath(path).parents:
        yield str(parent)


def _refuse(socket_path: str, message: str) -> UntrustedDaemon:
    return UntrustedDaemon(message, path=socket_path)


def check_private_dir(folder: str, socket_path: str) -> None:
    """Checks that `folder` (the socket's) is a private folder of this user; raises
    `UntrustedDaemon`, or `DaemonNotRunning` if it does not exist."""
    absolute = folder if os.path.isabs(folder) else os.path.join(os.getcwd(), folder)
    real = os.path.realpath(absolute)
    us = os.geteuid()
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise DaemonNotRunning(socket_path) from None
    except OSError as error:
        raise _refuse(socket_path, f"cannot examine {real}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(socket_path, f"{real} is not a folder")
    if info.st_uid != us:
        raise _refuse(
            socket_path,
            f"{real} belongs to {describe_user(info.st_uid)}, not to this user "
            f"({describe_user(us)}); latchkey only uses folders of its own user",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & _WRITABLE_BY_OTHERS:
        raise _refuse(
            socket_path,
            f"{real} can be changed by other users (mode {mode:04o}); fix: chmod go-w '{real}'",
        )
    # The folders above, both the ones named and the ones the links lead to.
    for ancestor in [*_ancestors(real), *_ancestors(absolute)]:
        _check_ancestor(ancestor, us, socket_path)


def _check_ancestor(folder: str, us: int, socket_path: str) -> None:
    try:
        info = os.stat(folder)
    except OSError as error:
        raise _refuse(socket_path, f"cannot examine {folder}: {error.strerror}") from None
    if info.st_uid not in (us, 0):
        raise _refuse(
            socket_path,
            f"{folder} belongs to {describe_user(info.st_uid)}, not to this user "
            f"({describe_user(us)}) or root",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & _WRITABLE_BY_OTHERS and not mode & stat.S_ISVTX:
        raise _refuse(
            socket_path,
            f"{folder} can be changed by other users (mode {mode:04o}); fix: chmod go-w '{folder}'",
        )


def check_socket_file(socket_path: str) -> None:
    """Checks that the socket file belongs to this user; `DaemonNotRunning` if it is
    missing."""
    try:
        info = os.stat(socket_path)
    except FileNotFoundError:
        raise DaemonNotRunning(socket_path) from None
    except OSError as error:
        raise _refuse(socket_path, f"cannot examine {socket_path}: {error.strerror}") from None
    us = os.geteuid()
    if info.st_uid != us:
        raise _refuse(
            socket_path,
            f"{socket_path} belongs to {describe_user(info.st_uid)}, not to this user "
            f"({describe_user(us)})",
        )


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of the connected Unix socket `sock`;
    `OSError` where the system cannot tell."""
    if sys.platform.startswith("linux"):
        # struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        size = struct.calcsize("iII")
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
        _pid, uid, _gid = struct.unpack("iII", raw)
        return int(uid)
    if sys.platform == "darwin" or sys.platform.startswith("freebsd"):
        # getsockopt(SOL_LOCAL = 0, LOCAL_PEERCRED = 1): struct xucred { u_int cr_version;
        # uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; ... }, cr_version 0.
        raw = sock.getsockopt(0, 1, 256)
        if len(raw) < 8:
            raise OSError("LOCAL_PEERCRED returned too little")
        version, uid = struct.unpack_from("=II", raw)
        if version != 0:
            raise OSError(f"LOCAL_PEERCRED returned an unknown xucred version {version}")
        return int(uid)
    raise OSError(f"no way to read a socket peer's credentials on {sys.platform}")


def check_peer(sock: socket.socket, socket_path: str) -> None:
    """Checks that the process listening at `socket_path`, connected through `sock`, runs
    as this user."""
    try:
        uid = peer_uid(sock)
    except OSError as error:
        raise _refuse(
            socket_path, f"cannot establish who listens on {socket_path}: {error}"
        ) from None
    if uid != os.geteuid():
        raise _refuse(
            socket_path,
            f"the process listening on {socket_path} runs as {describe_user(uid)}, "
            "not as this user",
        )
