"""A private redis-server for the tests: one per test session, on a free 127.0.0.1 port.

`redis_url()` returns the URL of the server to test against: `CRAWLPOOL_TEST_REDIS_URL` when set, else
a `redis-server` started on first use (no persistence, its own temp dir) and stopped by pid when the
session ends. With neither, the calling test is skipped — or fails when `CRAWLPOOL_REQUIRE_REDIS=1`.
Tests share the server and keep apart by using a fresh crawl id each (`new_crawl_id`), whose keys
`drop_crawl` deletes afterwards; nothing else in the server is touched.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import NoReturn

import pytest

SKIP_REASON = "needs redis-server on PATH or CRAWLPOOL_TEST_REDIS_URL"
_START_TIMEOUT_S = 5.0

_server_url: str | None = None


def redis_url() -> str:
    """The URL to test against, starting the session's server on first call (see module doc)."""
    global _server_url
    if importlib.util.find_spec("redis") is None:
        _unavailable("needs the redis package (pip install 'crawlpool[redis]')")
    external = os.environ.get("CRAWLPOOL_TEST_REDIS_URL")
    if external:
        return external
    if _server_url is None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable(SKIP_REASON)
        _server_url = _start(binary)
    return _server_url


def new_crawl_id() -> str:
    return f"test-{uuid.uuid4().hex}"


async def drop_crawl(url: str, crawl_id: str) -> None:
    """Delete every key of one crawl: those under `crawlpool:{crawl_id}:` and its buckets'
    `crawlpool:b:{crawl_id:<b>}:` (on a cluster URL, on every node)."""
    from crawlpool.frontier.redis_connection import connect

    client = connect(url)
    try:
        for pattern in (f"crawlpool:{{{crawl_id}}}:*", f"crawlpool:b:{{{crawl_id}:*"):
            async for key in client.scan_iter(match=pattern, count=500):
                await client.delete(key)  # one by one: a cluster refuses a DEL across slots
    finally:
        await client.aclose()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CRAWLPOOL_REQUIRE_REDIS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _start(binary: str) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="crawlpool-redis-"))
    port = _free_port()
    log_path = workdir / "redis.log"
    options = {
        "--bind": "127.0.0.1",
        "--port": str(port),
        "--save": "",
        "--appendonly": "no",
        "--dir": str(workdir),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, *(word for option in options.items() for word in option)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    deadline = time.monotonic() + _START_TIMEOUT_S
    while not _pings(port):
        try:
            # Waits on the process itself: returns at once if it died, else after 20 ms.
            process.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline:
                continue
            stop()
            pytest.fail(f"redis-server on port {port} did not answer PING within {_START_TIMEOUT_S:g} s")
        output = log_path.read_text(errors="replace")[-2000:]
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"redis-server exited with {process.returncode}:\n{output}")
    atexit.register(stop)
    return f"redis://127.0.0.1:{port}/0"
