"""The `openai` Python SDK as an agent behind `latchkey proxy`: it streams a chat completion
from a local HTTPS upstream that speaks OpenAI's streaming format, holding only a grant.

Everything is real: a CA and server certificate made with the `openssl` command, an HTTPS
server (http.server and ssl) in a thread, the built `latchkeyd` and `latchkey proxy`, and the
unmodified SDK given the proxy as its base URL and the grant as its API key. The upstream
must see the real key and never the grant; no log may hold either.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import openai
import pytest

from conftest import START_TIMEOUT, Env, Harness, binary

KEY = "sk-openai-upstream-7c2e"
PIECES = ["Hel", "lo", " from", " the", " upstream"]


def make_certs(folder: Path) -> None:
    """A test CA, and a certificate for 127.0.0.1 signed by it (EC P-256, two days)."""

    def run(*args: str) -> None:
        done = subprocess.run(
            ["openssl", *args], cwd=folder, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"openssl {args}: {done.stderr}"

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca = ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]
    ca += ["-subj", "/CN=latchkey python test CA"]
    ca += ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca += ["-addext", "keyUsage=critical,keyCertSign"]
    run("req", "-x509", *ec, *ca)
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    sign = ["-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"]
    run("x509", "-req", *sign, "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")


def chunk(delta: Dict[str, str], finish: object = None) -> bytes:
    """One server-sent event holding a `chat.completion.chunk`."""
    body = {
        "id": "chatcmpl-latchkey-1",
        "object": "chat.completion.chunk",
        "created": 1_764_000_000,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class Upstream:
    """An HTTPS server on 127.0.0.1 answering `POST /v1/chat/completions` with a stream.

    It sends the first piece at once and the rest only once the test says it has read the
    first one (`first_read`): a proxy that held the stream back would leave it waiting."""

    def __init__(self, certs: Path) -> None:
        self.headers: List[List[Tuple[str, str]]] = []
        self.first_read = threading.Event()
        self.waited_in_vain = False
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test reads what it needs from `upstream.headers`

            def write_chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def do_POST(self) -> None:
                upstream.headers.append(list(self.headers.items()))
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get_all("Authorization") != [f"Bearer {KEY}"]:
                    answer = b'{"error":{"message":"bad key","type":"invalid_request_error"}}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                request = json.loads(body)
                assert self.path == "/v1/chat/completions", self.path
                assert request["stream"] is True and request["model"] == "gpt-test", request
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.write_chunk(chunk({"role": "assistant", "content": PIECES[0]}))
                if not upstream.first_read.wait(START_TIMEOUT):
                    upstream.waited_in_vain = True
                for piece in PIECES[1:]:
                    self.write_chunk(chunk({"content": piece}))
                self.write_chunk(chunk({}, "stop"))
                self.write_chunk(b"data: [DONE]\n\n")
                self.write_chunk(b"")

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs / "server.pem", certs / "server.key")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(START_TIMEOUT)


class Proxy:
    """A running `latchkey proxy --port 0`, its stderr read as it arrives."""

    def __init__(self, env: Env, config: Path) -> None:
        argv = [str(binary("latchkey")), "--transport", "socket", "proxy", "--port", "0"]
        self.process = subprocess.Popen(
            [*argv, "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env.vars, RUST_LOG="latchkey=debug"),
            text=True,
        )
        self.lines: List[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        assert self.process.stdout is not None
        # "latchkey proxy: listening on http://127.0.0.1:PORT"; an empty line if it exited.
        first = self.process.stdout.readline().strip()
        if not first.startswith("latchkey proxy: listening on http://127.0.0.1:"):
            self.stop()
            pytest.fail(f"latchkey proxy did not start: {first!r}; stderr: {self.log}")
        self.port = int(first.rsplit(":", 1)[1])

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """Stops it by its pid (SIGTERM, then SIGKILL after the deadline)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(START_TIMEOUT)
        self.reader.join(START_TIMEOUT)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    server = Upstream(certs)
    yield server
    server.stop()


def test_the_openai_sdk_streams_through_the_proxy_with_only_a_grant(
    env: Env, harness: Harness, upstream: Upstream, tmp_path: Path, monkeypatch
) -> None:
    # The SDK's HTTP client would use a proxy from the environment; this test's is local.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    config = tmp_path / "config.toml"
    config.write_text(
        '[policy]\nrequire_grant = ["openai"]\n\n'
        "[proxy.routes.openai]\n"
        f'upstream = "https://127.0.0.1:{upstream.port}"\n'
        'service = "openai"\n'
        "allow_private = true\n"
        f'ca_file = "{tmp_path / "certs" / "ca.pem"}"\n'
    )
    daemon = harness.start("--config", str(config))
    stored = env.cli(["set", "openai"], stdin=KEY)
    assert stored.returncode == 0, stored.stderr
    created = env.cli(
        ["grant", "create", "--service", "openai", "--ops", "proxy", "--ttl", "1h", "--json"]
    )
    assert created.returncode == 0, created.stderr
    grant = json.loads(created.stdout)["token"]

    proxy = Proxy(env, config)
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{proxy.port}/openai/v1", api_key=grant, max_retries=0
        )
        stream = client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "say hello"}],
            stream=True,
        )
        content = []
        finish = None
        for event in stream:
            assert event.object == "chat.completion.chunk"
            choice = event.choices[0]
            if choice.delta.content:
                content.append(choice.delta.content)
                # The first piece came while the upstream holds the rest back.
                upstream.first_read.set()
            finish = choice.finish_reason or finish
        assert "".join(content) == "Hello from the upstream"
        assert finish == "stop"
        assert not upstream.waited_in_vain, "the first piece was held back by the proxy"

        # The same SDK with the key itself in place of a grant is refused by the proxy.
        with pytest.raises(openai.PermissionDeniedError):
            openai.OpenAI(
                base_url=f"http://127.0.0.1:{proxy.port}/openai/v1", api_key=KEY, max_retries=0
            ).chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
            )
    finally:
        proxy.stop()

    assert len(upstream.headers) == 1, "only the granted request reached the upstream"
    headers = upstream.headers[0]
    assert [v for k, v in headers if k.lower() == "authorization"] == [f"Bearer {KEY}"]
    assert all(grant not in value for _, value in headers)
    for name, log in (("proxy", proxy.log), ("daemon", daemon.log)):
        assert grant not in log, f"the grant is in the {name} log"
        assert KEY not in log, f"the key is in the {name} log"
    assert "route=openai" in proxy.log or 'route="openai"' in proxy.log, proxy.log
