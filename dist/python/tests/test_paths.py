"""The default socket is found as the Rust client finds it (`latchkey_paths::location`):
`$LATCHKEY_SOCKET`, then `$XDG_RUNTIME_DIR/latchkey`, then `$XDG_STATE_HOME/latchkey` when
absolute, then `~/.local/state/latchkey`; empty variables count as unset."""

from __future__ import annotations

import subprocess
import sys

import pytest

from latchkey.paths import default_socket_path, runtime_dir

from conftest import START_TIMEOUT, Env, binary

linux_only = pytest.mark.skipif(sys.platform == "darwin", reason="macOS uses its temp folder")


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"LATCHKEY_SOCKET": "/x/s.sock", "XDG_RUNTIME_DIR": "/run/user/7"}, "/x/s.sock"),
        (
            {"LATCHKEY_SOCKET": "", "XDG_RUNTIME_DIR": "/run/user/7"},
            "/run/user/7/latchkey/latchkey.sock",
        ),
        ({"LATCHKEY_SOCKET": "relative.sock"}, "relative.sock"),
        (
            {"XDG_RUNTIME_DIR": "/run/user/7", "XDG_STATE_HOME": "/s", "HOME": "/h"},
            "/run/user/7/latchkey/latchkey.sock",
        ),
    ],
)
def test_explicit_and_runtime_dir(env: dict, expected: str) -> None:
    assert default_socket_path(env) == expected


@linux_only
@pytest.mark.parametrize(
    "env,expected",
    [
        ({"XDG_RUNTIME_DIR": "", "XDG_STATE_HOME": "/s", "HOME": "/h"}, "/s/latchkey"),
        ({"XDG_STATE_HOME": "relative/state", "HOME": "/h"}, "/h/.local/state/latchkey"),
        ({"XDG_STATE_HOME": "", "HOME": "/h"}, "/h/.local/state/latchkey"),
        ({"HOME": "/h"}, "/h/.local/state/latchkey"),
        ({}, ".latchkey-no-home/latchkey"),
    ],
)
def test_the_fallback_without_a_runtime_dir(env: dict, expected: str) -> None:
    assert runtime_dir(env) == expected
    assert default_socket_path(env) == expected + "/latchkey.sock"


@linux_only
def test_the_cli_agrees(env: Env) -> None:
    """The built CLI names the same socket in its error when nothing listens there."""
    vars = dict(env.vars)
    del vars["XDG_RUNTIME_DIR"]
    out = subprocess.run(
        [str(binary("latchkey")), "--transport", "socket", "list"],
        env=vars,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    expected = default_socket_path(vars)
    assert expected == f"{env.state_dir}/latchkey/latchkey.sock"
    assert expected in out.stderr, out.stderr
