"""The MCP example (`examples/mcp_tool.py`) run as an MCP client would run it: over
stdin/stdout, against the real daemon and a local API that demands the token."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from conftest import START_TIMEOUT, Env

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mcp_tool.py"
TOKEN = "gho-mcp-example-canary-42"


class _Api(http.server.BaseHTTPRequestHandler):
    """An API that answers /user only with the right bearer token."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        body = json.dumps({"login": "octocat"} if ok else {"message": "Bad credentials"})
        self.send_response(200 if ok and self.path == "/user" else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def run_mcp(
    env: Env, api: str, service: str, messages: List[Dict[str, Any]]
) -> List[Dict[str, Any]]:
    vars = dict(env.vars, LATCHKEY_SERVICE=service, API_BASE=api)
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        env=vars,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert TOKEN not in out.stdout and TOKEN not in out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


SESSION = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "api_get", "arguments": {"path": "/user"}},
    },
]


def test_the_tool_calls_the_api_with_the_token_and_never_returns_it(
    env: Env, daemon, api: str
) -> None:
    out = env.cli(["set", "github"], stdin=TOKEN + "\n")
    assert out.returncode == 0, out.stderr
    answers = run_mcp(env, api, "github", SESSION)
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[0]["result"]["capabilities"] == {"tools": {}}
    assert answers[1]["result"]["tools"][0]["name"] == "api_get"
    result = answers[2]["result"]
    assert result["isError"] is False, result
    assert result["content"][0]["text"].startswith("HTTP 200\n")
    assert "octocat" in result["content"][0]["text"]
    assert TOKEN not in daemon.log


def test_a_missing_token_is_a_tool_error_with_its_kind(env: Env, daemon, api: str) -> None:
    answers = run_mcp(env, api, "nothing-stored", SESSION)
    result = answers[2]["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("No token (not_found): ")


def test_the_model_cannot_pick_the_host(env: Env, daemon, api: str) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "api_get", "arguments": {"path": "//evil.example/x"}},
    }
    answers = run_mcp(env, api, "github", [call])
    assert answers[0]["result"]["isError"] is True
