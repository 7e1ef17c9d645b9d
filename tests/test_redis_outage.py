"""Redis stopped under a running `crawlpool crawl`: the worker rides it out for one lease, then stops
with exit 1 and one line (not a URL's error, not a traceback), keeping what it committed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests import redis_server
from tests.redis_server import redis_url

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SRC = str(Path(__file__).parents[1] / "src")
PAGES = 200
LEASE_S = 1.0


async def test_redis_stopped_mid_crawl_ends_the_worker_with_one_line_and_exit_1(tmp_path: Path) -> None:
    redis_url()  # skips (or fails under CRAWLPOOL_REQUIRE_REDIS=1) like every Redis test
    binary = shutil.which("redis-server")
    assert binary is not None
    port = redis_server._free_port()
    server = await asyncio.create_subprocess_exec(
        binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(tmp_path), stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    stopped_at: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/robots.txt":
            return web.Response(status=404)
        if len(stopped_at) == 0 and request.path == "/p/20":
            stopped_at.append(time.monotonic())
            server.terminate()  # Redis goes away while this worker holds leases
        links = "".join(f'<a href="/p/{i}">x</a>' for i in range(PAGES))
        await asyncio.sleep(0.01)
        return web.Response(text=f"<html>{links}</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    site = TestServer(app, host="127.0.0.1")
    await site.start_server()
    out = tmp_path / "w1"
    try:
        deadline = time.monotonic() + 5
        while not redis_server._pings(port):  # waiting for a process to listen, bounded
            assert time.monotonic() < deadline, "redis-server did not start"
        crawler = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawlpool", "crawl", f"http://127.0.0.1:{site.port}/p/0", "-o", str(out),
            "--frontier", f"redis://127.0.0.1:{port}/0", "--crawl-id", "outage", "--lease", str(LEASE_S),
            "--per-host", "1", "--concurrency", "2", "-q",
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
        )  # fmt: skip
        _, err = await asyncio.wait_for(crawler.communicate(), timeout=60)
        ended = time.monotonic()
    finally:
        if server.returncode is None:
            server.kill()
        await server.wait()
        await site.close()
    assert stopped_at, "the crawl never reached the page that stops Redis"
    lines = err.decode().strip().splitlines()
    assert crawler.returncode == 1, err.decode()
    assert len(lines) == 1 and "lost" in lines[0] and "--resume to rejoin" in lines[0], lines
    assert "Traceback" not in err.decode()
    assert ended - stopped_at[0] < LEASE_S + 6, "the outage was not bounded by the lease"
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) >= 10, "committed work was not kept"
    assert all(r["error"] is None for r in records), "a state-store failure was recorded as a URL's error"
