"""Peak RSS of a crawl that reads a sitemap index of 1,000,000 URLs (`--sitemaps`).

    python -m benchmarks.sitemap_rss [--sitemaps 20] [--urls 50000] [--frontier sqlite]

A local site on 127.0.0.1 answers as two hosts. Host A (`127.0.0.1`) has no robots.txt, so the crawler
reads its `/sitemap.xml`: an index of `--sitemaps` gzipped sitemaps of `--urls` URLs each (the protocol's
maximum), all on host B (`localhost`). Host B's robots.txt answers 503 with Retry-After, so none of its
URLs is fetched: they all pile up in the frontier, which is what the sitemaps cost. Once every sitemap
has its manifest record, the crawler is stopped (SIGTERM: a graceful stop) and its peak RSS is read
from the kernel's accounting of the child (ru_maxrss); the frontier's file says how many URLs it holds.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

SRC = str(Path(__file__).parents[1] / "src")
DEADLINE_S = 1800.0
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def make_app(sitemaps: int, urls: int, port_box: list[int]) -> web.Application:
    bodies: dict[int, bytes] = {}

    def sitemap(k: int) -> bytes:
        if k not in bodies:
            port = port_box[0]
            items = "".join(
                f"<url><loc>http://localhost:{port}/q/{k}/{i}</loc><lastmod>2024-01-01</lastmod></url>\n"
                for i in range(urls)
            )
            bodies[k] = gzip.compress(f"<urlset {NS}>\n{items}</urlset>\n".encode(), compresslevel=1)
        return bodies[k]

    async def handle(request: web.Request) -> web.Response:
        host = request.host.rsplit(":", 1)[0]
        if host == "localhost":
            if request.path == "/robots.txt":
                return web.Response(status=503, headers={"Retry-After": "3600"})
            return web.Response(status=404)
        if request.path == "/":
            return web.Response(text="<html><body>home</body></html>", content_type="text/html")
        if request.path == "/sitemap.xml":
            port = port_box[0]
            items = "".join(
                f"<sitemap><loc>http://127.0.0.1:{port}/s/{k}.xml.gz</loc></sitemap>" for k in range(sitemaps)
            )
            return web.Response(
                text=f"<sitemapindex {NS}>{items}</sitemapindex>", content_type="application/xml"
            )
        if request.path.startswith("/s/"):
            k = int(request.path.removeprefix("/s/").removesuffix(".xml.gz"))
            return web.Response(body=sitemap(k), content_type="application/gzip")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def sitemap_records(manifest: Path) -> int:
    if not manifest.exists():
        return 0
    with manifest.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.endswith("\n") and json.loads(line).get("kind") == "sitemap")


async def main_async(sitemaps: int, urls: int, frontier: str) -> None:
    port_box: list[int] = []
    runner = web.AppRunner(make_app(sitemaps, urls, port_box), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    port = server.sockets[0].getsockname()[1]
    port_box.append(port)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawlpool", "crawl", f"http://127.0.0.1:{port}/",
            f"http://localhost:{port}/", "-o", str(out), "--sitemaps", "--frontier", frontier, "-q",
            env={**os.environ, "PYTHONPATH": SRC},
        )  # fmt: skip
        # The crawl never ends by itself (host B stays blocked): poll the manifest, then stop it.
        read = 0
        while read < sitemaps + 1 and proc.returncode is None and time.perf_counter() - started < DEADLINE_S:
            await asyncio.sleep(0.5)
            read = sitemap_records(out / "manifest.jsonl")
        elapsed = time.perf_counter() - started
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await proc.wait()
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        queued = 0
        state = out / ".crawlpool" / "frontier.db"
        if state.exists():
            with sqlite3.connect(state) as conn:
                queued = conn.execute("SELECT count(*) FROM urls WHERE kind IS NULL").fetchone()[0]
    await runner.cleanup()
    print(
        f"exit {code}: {read} of {sitemaps + 1} sitemaps read in {elapsed:.0f} s; "
        f"{queued:,} page URLs in the frontier ({sitemaps:,} x {urls:,} listed); "
        f"peak RSS {peak_mb:.0f} MB ({frontier} frontier)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sitemaps", type=int, default=20)
    parser.add_argument("--urls", type=int, default=50_000)
    parser.add_argument("--frontier", default="sqlite")
    args = parser.parse_args()
    asyncio.run(main_async(args.sitemaps, args.urls, args.frontier))


if __name__ == "__main__":
    main()
