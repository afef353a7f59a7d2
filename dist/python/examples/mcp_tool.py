#!/usr/bin/env python3
"""An MCP server whose tool calls an HTTP API with a token from latchkeyd.

The model asks for ``api_get {"path": "/user"}``; the tool fetches a fresh token from
latchkeyd (refreshed by the daemon if it must be), calls ``$API_BASE/path`` with it and
returns the status and body. The token goes into the HTTP header and nowhere else: not
into the tool's result, the model's context, a log or an error. The base URL is fixed
by the configuration, so the model cannot send the token to a host of its choosing.

Run it as an MCP stdio server (JSON-RPC 2.0, one message per line), for example in an
MCP client's configuration:

    {"command": "python3", "args": ["mcp_tool.py"],
     "env": {"LATCHKEY_SERVICE": "github", "API_BASE": "https://api.github.com"}}

Settings: ``LATCHKEY_SERVICE`` (default ``github``), ``LATCHKEY_ACCOUNT``,
``LATCHKEY_SCOPES`` (comma-separated), ``API_BASE``. Needs only the standard library and
the ``latchkey`` package (``pip install dist/python``).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

import latchkey

PROTOCOL_VERSION = "2025-06-18"
MAX_BODY = 4096

TOOL = {
    "name": "api_get",
    "description": "GET a path of the configured API, authenticated with the user's token.",
    "inputSchema": {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "e.g. /user"}},
        "required": ["path"],
    },
}

_client: Optional[latchkey.Client] = None


def bearer_token() -> latchkey.Secret:
    """A token for the configured service, valid for at least another minute.

    This is the one function a tool handler needs; one client (one checked connection)
    serves every call. Raises `latchkey.LatchkeyError` subclasses.
    """
    global _client
    if _client is None:
        _client = latchkey.Client()
    scopes = [s for s in os.environ.get("LATCHKEY_SCOPES", "").split(",") if s]
    result = _client.get(
        os.environ.get("LATCHKEY_SERVICE", "github"),
        account=os.environ.get("LATCHKEY_ACCOUNT") or None,
        scopes=scopes,
        min_valid=60,
    )
    return result.secret


def _tool_result(text: str, error: bool = False) -> Dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": error}


def api_get(path: Any) -> Dict[str, Any]:
    """The `api_get` tool: an MCP tool result, never containing the token."""
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        return _tool_result("path must be a string starting with a single /", error=True)
    try:
        token = bearer_token()
    except latchkey.AuthenticationRequired as e:
        return _tool_result(f"The user must log in again: {e}", error=True)
    except latchkey.LatchkeyError as e:
        # The kind is stable (not_found, locked, untrusted_daemon, ...); the text is safe.
        return _tool_result(f"No token ({e.kind}): {e}", error=True)
    base = os.environ.get("API_BASE", "https://api.github.com").rstrip("/")
    request = urllib.request.Request(
        base + path, headers={"Authorization": f"Bearer {token.expose()}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read(MAX_BODY)
    except (urllib.error.URLError, OSError) as e:
        return _tool_result(f"The API could not be reached: {getattr(e, 'reason', e)}", True)
    return _tool_result(f"HTTP {status}\n{body.decode('utf-8', 'replace')}", error=status >= 400)


def handle(message: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The answer to one MCP message (`None` for notifications)."""
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message:
        return None
    if method == "initialize":
        result: Any = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "latchkey-example", "version": latchkey.__version__},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call" and params.get("name") == TOOL["name"]:
        result = api_get((params.get("arguments") or {}).get("path"))
    else:
        error = {"code": -32601, "message": "unknown method or tool"}
        return {"jsonrpc": "2.0", "id": message["id"], "error": error}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def main() -> int:
    """Serves MCP on stdin/stdout until stdin closes."""
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        answer = handle(message)
        if answer is not None:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
