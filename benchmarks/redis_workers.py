"""One crawl shared by 1, 2 and 3 crawlpool processes through a private redis-server, and how long a
killed worker's hosts take to come back.

    python -m benchmarks.redis_workers [--hosts 8] [--pages 150] [--lease 3]
    CRAWLPOOL_SRC=../other/src python -m benchmarks.redis_workers    # the workers run another checkout

A site of `--hosts` hosts (one port each on 127.0.0.1, so each is its own politeness key) with `--pages`
pages per host is served from this process. For N in 1, 2, 3 the same crawl runs with N workers; then a
3-worker crawl with `--lease` seconds is run again while one worker is SIGKILLed mid-crawl, and for each
host the kill left waiting, the time until its next request is reported. Each of the first runs also
reports Redis' CPU and commands (`INFO cpu`, `INFO commandstats`, commands inside scripts included) per page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

# The crawlpool the workers run: this checkout's, or another src/ dir (CRAWLPOOL_SRC) to compare.
SRC = os.environ.get("CRAWLPOOL_SRC", str(Path(__file__).parents[1] / "src"))


def start_redis(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server")
    assert binary, "needs redis-server"
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)  # waiting for a process to start listening
    raise RuntimeError("redis-server did not start")


def redis_figures(url: str) -> tuple[float, int]:
    """(CPU µs, commands run, those inside scripts included) of the server at `url` so far."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        cpu = client.info("cpu")
        calls = sum(int(v["calls"]) for v in client.info("commandstats").values())
    finally:
        client.close()
    return (float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])) * 1e6, calls


class Site:
    def __init__(self, hosts: int, pages: int) -> None:
        self.hosts, self.pages = hosts, pages
        self.servers: list[TestServer] = []
        self.log: list[tuple[int, float, str]] = []  # (port, start, user agent)
        self.on_request = lambda agent: None

    async def handle(self, request: web.Request) -> web.Response:
        self.log.append((request.url.port or 0, time.monotonic(), request.headers.get("User-Agent", "")))
        self.on_request(request.headers.get("User-Agent", ""))
        if request.path == "/robots.txt":
            return web.Response(status=404)
        i = int(request.path.rsplit("/", 1)[1])
        hrefs = [
            f"http://127.0.0.1:{s.port}/p/{(i * 7 + k) % self.pages}" for s in self.servers for k in (1, 2)
        ]
        body = (
            "<html><body>" + "".join(f'<a href="{h}">x</a>' for h in hrefs) + "x" * 20_000 + "</body></html>"
        )
        return web.Response(text=body, content_type="text/html")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        for _ in range(self.hosts):
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            self.servers.append(server)


async def run_workers(
    site: Site, redis: str, n: int, tmp: Path, lease_s: float, kill_after: int | None = None
) -> tuple[float, int, dict[int, float]]:
    crawl_id = f"bench-{uuid.uuid4().hex[:8]}"
    seeds = tmp / f"seeds-{crawl_id}.txt"
    seeds.write_text("".join(f"http://127.0.0.1:{s.port}/p/0\n" for s in site.servers))
    site.log.clear()
    procs: list[asyncio.subprocess.Process] = []
    killed: list[float] = []

    def maybe_kill(agent: str) -> None:
        if kill_after is not None and not killed and len(site.log) >= kill_after and "w1" in agent:
            killed.append(time.monotonic())
            os.kill(procs[1].pid, signal.SIGKILL)

    site.on_request = maybe_kill
    started = time.monotonic()
    for w in range(n):
        args = ["crawl", str(seeds), "-o", str(tmp / f"{crawl_id}-w{w}"), "--frontier", redis]
        args += ["--crawl-id", crawl_id, "--lease", str(lease_s), "--per-host", "1", "--concurrency", "16"]
        args += ["--retries", "0", "--user-agent", f"crawlpool-w{w}/1.0", "-q"]
        env = {**os.environ, "PYTHONPATH": SRC}
        procs.append(await asyncio.create_subprocess_exec(sys.executable, "-m", "crawlpool", *args, env=env))
    await asyncio.gather(*(p.wait() for p in procs))
    elapsed = time.monotonic() - started
    pages = sum(1 for _, _, agent in site.log) - site.hosts * n  # minus robots.txt requests (at most)
    comeback: dict[int, float] = {}
    if killed:
        kill_at = killed[0]
        held = {port for port, t, agent in site.log if "w1" in agent and kill_at - 2 * lease_s < t <= kill_at}
        for port in held:
            later = [t for p, t, agent in site.log if p == port and t > kill_at and "w1" not in agent]
            if later:
                comeback[port] = min(later) - kill_at
    return elapsed, pages, comeback


async def main_async(hosts: int, pages: int, lease_s: float) -> None:
    site = Site(hosts, pages)
    await site.start()
    with tempfile.TemporaryDirectory() as tmp:
        redis, url = start_redis(tmp)
        try:
            total = hosts * pages
            rates = {}
            for n in (1, 2, 3):
                before = redis_figures(url)
                elapsed, _, _ = await run_workers(site, url, n, Path(tmp), lease_s)
                cpu_us, commands = (a - b for a, b in zip(redis_figures(url), before, strict=True))
                rates[n] = total / elapsed
                print(
                    f"{n} worker(s): {total:,} pages in {elapsed:.1f} s = {rates[n]:.0f} pages/s; "
                    f"Redis {cpu_us / total:.0f} us CPU and {commands / total:.1f} commands per page"
                )
            print(f"ratios: 2/1 = {rates[2] / rates[1]:.2f}x, 3/1 = {rates[3] / rates[1]:.2f}x")
            _, _, comeback = await run_workers(site, url, 3, Path(tmp), lease_s, kill_after=total // 3)
            waits = sorted(comeback.values())
            print(
                f"killed worker (lease {lease_s:g} s): its {len(waits)} host(s) came back after "
                + ", ".join(f"{w:.1f} s" for w in waits)
            )
        finally:
            redis.terminate()
            redis.wait()
    for server in site.servers:
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--pages", type=int, default=150)
    parser.add_argument("--lease", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.hosts, args.pages, args.lease))


if __name__ == "__main__":
    main()
