"""The per-host gaps of a two-host crawl, measured by the server: `127.0.0.1` and `localhost` are the
same local site, and two politeness keys for the crawler.

    python -m benchmarks.politeness_gaps [--delay 0.25] [--pages 20] [--per-host 1]

Prints, per host, the number of requests, the most requests ever in flight at once, and the smallest
and median gap between two request starts (which `--delay` must bound from below).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from itertools import pairwise

from aiohttp import web
from aiohttp.test_utils import TestServer

from crawlpool import crawl


async def main_async(delay_s: float, pages: int, per_host: int) -> None:
    hits: dict[str, list[tuple[float, float]]] = defaultdict(list)
    port_box: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        started = time.monotonic()
        host = request.host.rsplit(":", 1)[0]
        if request.path == "/":
            links = [
                f"http://{h}:{port_box[0]}/p/{i}" for h in ("127.0.0.1", "localhost") for i in range(pages)
            ]
            body = "".join(f'<a href="{link}">x</a>' for link in links)
        else:
            body = "page"
        await asyncio.sleep(0.01)  # the server taking 10 ms per page
        hits[host].append((started, time.monotonic()))
        return web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        port_box.append(server.port)
        with tempfile.TemporaryDirectory() as tmp:
            seeds = [f"http://{h}:{server.port}/" for h in ("127.0.0.1", "localhost")]
            await crawl(seeds, output=f"{tmp}/out", delay_s=delay_s, per_host=per_host, concurrency=16)
    for host, spans in sorted(hits.items()):
        spans.sort()
        gaps = [b[0] - a[0] for a, b in pairwise(spans)]
        events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
        level = peak = 0
        for _, step in events:
            level += step
            peak = max(peak, level)
        print(
            f"{host}: {len(spans)} requests (robots.txt included), at most {peak} in flight, "
            f"gap between starts min {min(gaps) * 1000:.1f} ms, "
            f"median {statistics.median(gaps) * 1000:.1f} ms "
            f"(--delay {delay_s * 1000:.0f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.25)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--per-host", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main_async(args.delay, args.pages, args.per_host))


if __name__ == "__main__":
    main()
