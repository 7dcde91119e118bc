"""Starts the real `lingqiao serve` (release build, qwen05) once per test session.

The binary is target/release/lingqiao (LINGQIAO_BIN overrides it); the model must be in
~/.cache/lingqiao/models (scripts/test.sh pulls it). Nothing is mocked.
"""

import http.client
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("LINGQIAO_BIN", str(ROOT / "target" / "release" / "lingqiao"))
MODEL = "qwen05"
# The speech model served beside it at /v1/audio/*.
WHISPER = "whisper-tiny-en"
API_KEY = "sk-lingqiao-test"
N_CTX = 4096
# Qwen2.5-0.5B's hidden size.
N_EMBD = 896


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int, log: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def request(self, method, path, body=None, headers=None, key=True):
        """A raw HTTP exchange: (status, headers, body bytes). `body` may be bytes or a
        JSON-able value."""
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Bearer {API_KEY}"
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            try:
                conn.request(method, path, body=body, headers=h)
            except (BrokenPipeError, ConnectionResetError):
                # The server answered (e.g. 413) before reading the whole body.
                pass
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, **kw):
        status, _, data = self.request(method, path, body, **kw)
        return status, json.loads(data)


def start_server(log: Path, *args: str):
    """`lingqiao serve -m qwen05` on a free port with `args`; yields a Server once /health
    answers, stops it after."""
    port = free_port()
    cmd = [BIN, "serve", "-m", MODEL, "--port", str(port), "--api-key", API_KEY, *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(port, log)
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{srv.url}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after 180 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    yield from start_server(
        log, "--parallel", "4", "--ctx", str(N_CTX), "--whisper", WHISPER
    )


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=300)
