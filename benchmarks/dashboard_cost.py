"""What the dashboard costs in CPU, at its one update a second with a page open.

    python -m benchmarks.dashboard_cost [--seconds 20]

Two measurements, each with a client that does what the page does (the `/api/events` stream, and
`/api/hosts`, `/api/errors`, `/api/workers` every 3 s):

- **live**: a slow crawl (`--delay 1` on a local site, so the crawl itself idles) run twice for the
  same time, without and with `--dashboard` and the client; the difference of the crawl process's CPU
  time over the wall time is the dashboard's share of a core.
- **stored**: `crawlpool dashboard OUTPUT` over a finished crawl of 5,000 records, with the client; its
  process's CPU time over the wall time (start-up excluded).

Everything listens on 127.0.0.1. The target: under 2% of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web

PAGES = 5_000
SRC = str(Path(__file__).parents[1] / "src")


def site_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        links = "".join(f'<a href="/p/{j}">{j}</a>' for j in range(i * 4 + 1, min(i * 4 + 5, PAGES)))
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/p/{i}", handle)
    return app


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip


async def dashboard_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    while line := await asyncio.wait_for(proc.stderr.readline(), timeout=60):
        found = re.search(rb"dashboard at (http://\S+)", line)
        if found:
            return found.group(1).decode()
    raise RuntimeError("no dashboard URL printed")


async def be_the_page(url: str, seconds: float) -> int:
    """Read the event stream and poll the tables like the page does, for `seconds`; events read."""
    events = 0
    async with aiohttp.ClientSession() as session:

        async def stream() -> None:
            nonlocal events
            async with session.get(url + "api/events") as response:
                async for line in response.content:
                    events += line.startswith(b"event: status")

        async def tables() -> None:
            while True:
                for path in ("api/hosts?limit=50", "api/errors", "api/workers"):
                    async with session.get(url + path) as response:
                        await response.read()
                await asyncio.sleep(3)

        tasks = [asyncio.create_task(stream()), asyncio.create_task(tables())]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return events


async def live_share(base: str, work: Path, seconds: float, dashboard: bool) -> float:
    args = ["crawl", base, "-o", str(work / f"live-{dashboard}"), "--delay", "1", "-q"]
    if dashboard:
        args = [*args[:-1], "--dashboard", "127.0.0.1:0"]  # -q would hide the URL
    proc = await start(*args)
    if dashboard:
        url = await dashboard_url(proc)
    else:
        await asyncio.sleep(2)
        url = None
    before, start_time = cpu_s(proc.pid), asyncio.get_running_loop().time()
    if url is not None:
        await be_the_page(url, seconds)
    else:
        await asyncio.sleep(seconds)
    share = (cpu_s(proc.pid) - before) / (asyncio.get_running_loop().time() - start_time)
    proc.terminate()
    await proc.wait()
    return share


async def stored_share(base: str, work: Path, seconds: float) -> tuple[float, int]:
    output = work / "stored"
    crawler = await start("crawl", base, "-o", str(output), "--parser", "lxml", "-q")
    await crawler.wait()
    board = await start("dashboard", str(output), "--port", "0")
    url = await dashboard_url(board)
    before, start_time = cpu_s(board.pid), asyncio.get_running_loop().time()
    events = await be_the_page(url, seconds)
    share = (cpu_s(board.pid) - before) / (asyncio.get_running_loop().time() - start_time)
    board.terminate()
    await board.wait()
    return share, events


async def main(seconds: float) -> None:
    runner = web.AppRunner(site_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/p/0"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        without = await live_share(base, work, seconds, dashboard=False)
        with_board = await live_share(base, work, seconds, dashboard=True)
        stored, events = await stored_share(base, work, seconds)
    await runner.cleanup()
    print(
        f"live crawl at --delay 1, {seconds:g} s: {without:.2%} of a core without the dashboard, "
        f"{with_board:.2%} with it and a page open: the dashboard costs {with_board - without:.2%}"
    )
    print(
        f"crawlpool dashboard over {PAGES:,} records, {events} updates in {seconds:g} s: "
        f"{stored:.2%} of a core"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main(parser.parse_args().seconds))
