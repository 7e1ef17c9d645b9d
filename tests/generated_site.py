"""A generated site for crawls run as subprocesses (`python -m crawlpool crawl`), and what those tests
share: starting a crawl, waiting for it, and checking that every page was stored exactly once.

The site calls `on_request(count)` as each request arrives, so a test acts (kill -9, a signal) at a
chosen moment of the crawl without sleeping; it also counts the requests it is answering at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from benchmarks.sitegen import page_name, render_page

SRC = str(Path(__file__).parents[1] / "src")
PAGES = 300


@dataclass
class Site:
    """`pages` generated pages, each answered `delay_s` late."""

    pages: int = PAGES
    delay_s: float = 0.0
    requests: int = 0
    starts: list[float] = field(default_factory=list)
    on_request: Callable[[int], None] = lambda count: None
    in_flight: int = 0
    max_in_flight: int = 0
    # Requests after the first `gate_after` wait until `gate` is set (by the test, when the crawl has
    # reached a state it waits for), so the crawl cannot end before then however fast it runs.
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    gate_after: int | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.starts.append(time.monotonic())
        self.on_request(self.requests)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate_after is not None and self.requests > self.gate_after:
                await self.gate.wait()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)  # the server being slow, not the test waiting
        finally:
            self.in_flight -= 1
        path = request.path.lstrip("/") or "index.html"
        if path == "robots.txt":
            return web.Response(status=404)
        index = 0 if path == "index.html" else int(path.rsplit("/", 1)[1].removesuffix(".html"))
        body = render_page(index, self.pages, page_bytes=1500, links=8)
        return web.Response(text=body, content_type="text/html")

    def app(self) -> web.Application:
        return single_route_app(self.handle)

    def urls(self, base: str) -> set[str]:
        return {base + "/"} | {f"{base}/{page_name(i)}" for i in range(1, self.pages)}


def single_route_app(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Site], asyncio.Future[str]]]:
    servers: list[TestServer] = []

    async def start(site: Site) -> str:
        server = TestServer(site.app(), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start  # type: ignore[misc]
    for server in servers:
        await server.close()


async def start_crawl(base: str, output: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", "crawl", base + "/", "-o", str(output), "--concurrency", "8",
        "--per-host", "4", "--retries", "0", "-q", *extra,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def assert_complete_and_exactly_once(output: Path, expected: set[str]) -> None:
    lines = (output / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    urls = [r["url"] for r in records]
    assert len(urls) == len(set(urls)), "a URL has two manifest records"
    assert set(urls) == expected
    for record in records:
        body = (output / record["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == record["sha256"]
    assert not list((output / ".crawlpool" / "tmp").glob("*.part")), "temp files left behind"
