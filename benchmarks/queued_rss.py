"""Peak RSS of a crawl whose frontier ends up holding 1,000,000 queued URLs.

    python -m benchmarks.queued_rss [--pages 1000] [--links 1000] [--frontier sqlite]

A local site on 127.0.0.1 answers as two hosts. Host A (`127.0.0.1`) serves a chain of `--pages` pages;
each links to the next and to `--links` distinct URLs on host B (`localhost`). Host B's robots.txt
answers 503 with Retry-After, so the crawler must hold all of B's URLs back: they pile up in the
frontier. The crawl stops at `--pages` stored pages with pages x links URLs queued. The crawler runs
as a subprocess; its peak RSS is read from the kernel's accounting of the child (ru_maxrss).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

SRC = str(Path(__file__).parents[1] / "src")


def make_app(pages: int, links: int, port_box: list[int]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        host = request.host.rsplit(":", 1)[0]
        if request.path == "/robots.txt":
            if host == "localhost":
                return web.Response(status=503, headers={"Retry-After": "3600"})
            return web.Response(status=404)
        if host != "127.0.0.1" or not request.path.startswith("/p/"):
            return web.Response(status=404)
        i = int(request.path.removeprefix("/p/"))
        port = port_box[0]
        hrefs = [f"/p/{i + 1}"] if i + 1 < pages else []
        hrefs += [f"http://localhost:{port}/q/{i}/{k}" for k in range(links)]
        body = "<html><body>" + "".join(f'<a href="{h}">x</a>' for h in hrefs) + "</body></html>"
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def main_async(pages: int, links: int, frontier: str) -> None:
    port_box: list[int] = []
    runner = web.AppRunner(make_app(pages, links, port_box), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    port = server.sockets[0].getsockname()[1]
    port_box.append(port)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawlpool", "crawl", f"http://127.0.0.1:{port}/p/0",
            f"http://localhost:{port}/", "-o", f"{tmp}/out", "--max-pages", str(pages),
            "--frontier", frontier, "--per-host", "1", "-q", "--stats-json", f"{tmp}/stats.json",
            env={**os.environ, "PYTHONPATH": SRC},
        )  # fmt: skip
        code = await proc.wait()
        elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        state = Path(tmp) / "out" / ".crawlpool" / "frontier.db"
        size_mb = state.stat().st_size / 1e6 if state.exists() else 0.0
    await runner.cleanup()
    print(
        f"exit {code}: {pages:,} pages stored, {pages * links:,} URLs left queued; "
        f"peak RSS {peak_mb:.0f} MB; frontier file {size_mb:.0f} MB; {elapsed:.0f} s ({frontier} frontier)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--links", type=int, default=1000)
    parser.add_argument("--frontier", default="sqlite")
    args = parser.parse_args()
    asyncio.run(main_async(args.pages, args.links, args.frontier))


if __name__ == "__main__":
    main()
