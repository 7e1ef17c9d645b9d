"""The dashboard as a person sees it: a real crawl with `--dashboard`, the page loaded in headless
Chromium, its live counters moving and its hosts table filled after its scripts ran; the same for
`crawlpool dashboard --frontier redis://...` over two workers. Skipped (with the reason) without
Chromium; `.ci/run` installs it.

With CRAWLPOOL_SCREENSHOT=PATH the first test also saves the page as a PNG there (README's picture:
`CRAWLPOOL_SCREENSHOT=docs/dashboard.png python -m pytest tests/test_dashboard_browser.py -k crawl`).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.browser import chromium_binary, open_page
from tests.redis_server import drop_crawl, new_crawl_id, redis_url

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).parents[1] / "src")
PAGES = 400
# Counters that moved between two updates, and how many host rows the table shows, once it shows any.
MOVING = (
    "Number(document.getElementById('live').dataset.updates) >= 3",
    "document.getElementById('records').textContent",
)
HOST_ROWS = (
    "document.querySelectorAll('#host_rows tr').length > 0",
    "document.querySelectorAll('#host_rows tr').length",
)


def site_app() -> web.Application:
    """PAGES pages in a chain with a few side links each: enough work for a few seconds at --delay."""

    async def handle(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        links = "".join(f'<a href="/p/{j}">{j}</a>' for j in range(i + 1, min(i + 6, PAGES)))
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/p/{i}", handle)
    return app


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip


async def dashboard_url(proc: asyncio.subprocess.Process) -> str:
    """The URL the process prints once its dashboard listens."""
    assert proc.stderr is not None
    while line := await asyncio.wait_for(proc.stderr.readline(), timeout=30):
        found = re.search(rb"dashboard at (http://\S+)", line)
        if found:
            return found.group(1).decode()
    raise AssertionError("the dashboard URL was never printed")


@pytest.fixture
async def site() -> AsyncIterator[str]:
    chromium_binary()  # skip before starting anything
    async with TestServer(site_app(), host="127.0.0.1") as server:
        yield f"http://127.0.0.1:{server.port}/p/0"


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    await asyncio.wait_for(proc.wait(), timeout=30)


async def test_a_crawl_with_dashboard_shows_live_counters_and_hosts(site: str, tmp_path: Path) -> None:
    crawler = await start(
        "crawl", site, "-o", str(tmp_path / "out"), "--delay", "0.02", "--dashboard", "127.0.0.1:0",
        "--progress-interval", "3600",
    )  # fmt: skip
    try:
        url = await dashboard_url(crawler)
        async with open_page(url, tmp_path / "profile") as page:
            first = await page.wait_for(
                "Number(document.getElementById('live').dataset.updates) >= 1", MOVING[1]
            )
            later = await page.wait_for(*MOVING)
            assert int(later.replace(",", "")) > int(first.replace(",", "")), "the done counter did not move"
            assert await page.wait_for(*HOST_ROWS) == 1
            host = await page.evaluate("document.querySelector('#host_rows td').textContent")
            assert host == site.removesuffix("/p/0")
            state = await page.evaluate("document.getElementById('state').textContent")
            assert state in ("running", "finished") or state.startswith("waiting")
            screenshot = os.environ.get("CRAWLPOOL_SCREENSHOT")
            if screenshot:
                png = await page.screenshot()
                await asyncio.to_thread(Path(screenshot).write_bytes, png)
    finally:
        await stop(crawler)


async def test_dashboard_of_a_redis_crawl_shows_its_two_workers(site: str, tmp_path: Path) -> None:
    url_of_redis, crawl_id = redis_url(), new_crawl_id()
    common = (
        "--frontier",
        url_of_redis,
        "--crawl-id",
        crawl_id,
        "--delay",
        "0.02",
        "--progress-interval",
        "3600",
    )
    workers = [await start("crawl", site, "-o", str(tmp_path / f"w{i}"), *common) for i in range(2)]
    board = await start("dashboard", "--frontier", url_of_redis, "--crawl-id", crawl_id, "--port", "0")
    try:
        url = await dashboard_url(board)
        async with open_page(url, tmp_path / "profile") as page:
            first = await page.wait_for(
                "Number(document.getElementById('live').dataset.updates) >= 1", MOVING[1]
            )
            later = await page.wait_for(*MOVING)
            assert int(later.replace(",", "")) > int(first.replace(",", ""))
            rows = await page.wait_for(
                "document.querySelectorAll('#worker_rows tr').length >= 2",
                "document.querySelectorAll('#worker_rows tr').length",
            )
            assert rows == 2
            rates = await page.wait_for(
                "Array.from(document.querySelectorAll('#worker_rows tr td:nth-child(4)'))"
                ".some((td) => Number(td.textContent) > 0)",
                "Array.from(document.querySelectorAll('#worker_rows tr td:nth-child(4)')).map((td) => td.textContent)",
            )
            assert len(rates) == 2
            assert await page.wait_for(*HOST_ROWS) >= 1
    finally:
        for proc in (*workers, board):
            await stop(proc)
        await drop_crawl(url_of_redis, crawl_id)


async def test_an_error_example_links_to_its_record(tmp_path: Path) -> None:
    chromium_binary()

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/":
            return web.Response(text='<a href="/gone">gone</a>', content_type="text/html")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        output = tmp_path / "out"
        crawler = await start("crawl", f"http://127.0.0.1:{server.port}/", "-o", str(output), "-q")
        assert await crawler.wait() == 0
    board = await start("dashboard", str(output), "--port", "0")
    try:
        async with open_page(await dashboard_url(board), tmp_path / "profile") as page:
            await page.wait_for("document.querySelector('#error_rows a.example') !== null")
            await page.evaluate("document.querySelector('#error_rows a.example').click()")
            shown = await page.wait_for(
                "document.querySelectorAll('#record_rows tr').length === 1",
                "Array.from(document.querySelectorAll('#record_rows td')).map((td) => td.textContent)",
            )
            assert shown[1].endswith("/gone") and shown[2] == "404" and shown[3].startswith("http_4xx")
    finally:
        await stop(board)
