// The hostile request lines and the errors they must get, shared by the socket suite
// (protocol.rs) and the Windows pipe suite (tests/windows), which include! this file.

/// (request line, JSON-RPC code, data.kind)
const HOSTILE: &[(&[u8], i64, &str)] = &[
    (b"{bad json HOSTILE-MARKER", -32700, "invalid_request"),
    (b"\xff\xfe\xfd HOSTILE-MARKER", -32700, "invalid_request"),
    (b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"list\"}]", -32600, "invalid_request"),
    (b"42", -32600, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"method\":\"list\"}", -32600, "invalid_request"),
    (b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"list\"}", -32600, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":{\"HOSTILE-MARKER\":1},\"method\":\"list\"}", -32600, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"HOSTILE-MARKER\"}", -32601, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", -32600, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\"}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":5}}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":[\"HOSTILE-MARKER\"]}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"x\",\"scopes\":\"HOSTILE-MARKER\"}}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"set\",\"params\":{\"service\":\"x\",\"bundle\":{\"kind\":\"HOSTILE-MARKER\"}}}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"set\",\"params\":{\"service\":\"x\",\"bundle\":{\"kind\":\"api_key\",\"key\":\"\"}}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"set\",\"params\":{\"service\":\"x\",\"bundle\":{\"kind\":\"oauth2\",\"access_token\":\"a\",\"expires_in\":-5}}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"set\",\"params\":{\"service\":\"x\",\"bundle\":{\"kind\":\"oauth2\",\"access_token\":\"a\",\"scopes\":[\"has space\"]}}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"\"}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"HOSTILE-MARKER\\u0000nul\"}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get\",\"params\":{\"service\":\"HOSTILE-MARKER\\nnewline\"}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"set\",\"params\":{\"service\":\"HOSTILE-MARKER\\u001b[2J\",\"bundle\":{\"kind\":\"api_key\",\"key\":\"k\"}}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"clear\",\"params\":{\"service\":\"ok\",\"account\":\"HOSTILE-MARKER\\u001b\"}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"unlock\",\"params\":{\"passphrase\":7}}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"unlock\",\"params\":{\"passphrase\":\"HOSTILE-MARKER\",\"create\":\"yes\"}}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"unlock\",\"params\":{\"passphrase\":\"HOSTILE-MARKER\"}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"passwd\",\"params\":{\"old\":\"HOSTILE-MARKER\"}}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"passwd\",\"params\":{\"old\":\"HOSTILE-MARKER\",\"new\":\"HOSTILE-MARKER2\"}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"migrate\",\"params\":{\"passphrase\":\"HOSTILE-MARKER\"}}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"migrate\",\"params\":{\"to\":\"HOSTILE-MARKER\"}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"migrate\",\"params\":{\"to\":\"auto\",\"passphrase\":\"HOSTILE-MARKER\"}}", -32000, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"migrate\",\"params\":{\"to\":[\"HOSTILE-MARKER\"]}}", -32602, "invalid_request"),
    (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"migrate\",\"params\":{\"to\":\"x\",\"passphrase\":\"\",\"create\":\"HOSTILE-MARKER\"}}", -32602, "invalid_request"),
];

/// Checks the answer to the hostile `line`: the expected code and kind, no result, and no
/// echo of the client's input.
fn assert_refused(line: &[u8], code: i64, kind: &str, response: &serde_json::Value) {
    let shown = String::from_utf8_lossy(line);
    assert_eq!(response["error"]["code"], code, "{shown}: {response}");
    assert_eq!(response["error"]["data"]["kind"], kind, "{shown}: {response}");
    assert!(response.get("result").is_none(), "{shown}: {response}");
    assert!(
        !response.to_string().contains("HOSTILE-MARKER"),
        "the error echoes client input: {response}"
    );
}
