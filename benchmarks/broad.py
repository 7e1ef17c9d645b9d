"""The broad-crawl benchmark: many hosts, each answering late, a few requests per host at a time.

    python -m benchmarks.broad [--hosts 200] [--pages 50] [--latency 0.2] [--concurrency 64 256]

Serves `--hosts` distinct hosts on loopback addresses 127.0.1.1, 127.0.1.2, ... (each its own IP, so
its own host for politeness), every answer `--latency` seconds late, from one CPU-cheap asyncio server
process (raw protocol, no framework). Each host has `--pages` pages in a chain with a few links back and
forth. crawlpool crawls every host from its root (all roots are seeds, so the address guard lets the
loopback addresses through) with `--per-host 2 --no-robots`, once per parser and concurrency, and the
table says:

- pages/s, and its share of the bound: `min(C, hosts x per_host) / latency` pages/s;
- CPU ms per page of the crawler process (user + sys, from RUSAGE_CHILDREN);
- the most requests the server ever saw in flight to one host (politeness says at most 2).

Everything binds to 127.0.1.x; nothing leaves the machine. Ratios from one run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path

SRC = str(Path(__file__).parents[1] / "src")
PORT = 8090


def host_address(i: int) -> str:
    return f"127.0.1.{i + 1}" if i < 254 else f"127.0.{2 + (i - 254) // 254}.{(i - 254) % 254 + 1}"


def page(host: str, i: int, pages: int) -> bytes:
    links = "".join(f'<a href="/p/{j}">{j}</a>' for j in (i + 1, i + 2, i + 3, max(i - 1, 0)) if j < pages)
    body = f"<!doctype html><html><body><h1>{host} {i}</h1>{links}</body></html>".encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class Serve(asyncio.Protocol):
    """One connection: answers each request after the latency; counts requests in flight per host."""

    def __init__(
        self, host: str, pages: int, latency: float, in_flight: dict[str, int], peak: dict[str, int]
    ):
        self.host, self.pages, self.latency = host, pages, latency
        self.in_flight, self.peak = in_flight, peak
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1].decode()
            self.in_flight[self.host] = n = self.in_flight.get(self.host, 0) + 1
            self.peak[self.host] = max(self.peak.get(self.host, 0), n)
            asyncio.get_running_loop().call_later(self.latency, self.answer, path)

    def answer(self, path: str) -> None:
        self.in_flight[self.host] -= 1
        if self.transport is None or self.transport.is_closing():
            return
        if path.startswith("/p/") and path[3:].isdigit() and int(path[3:]) < self.pages:
            self.transport.write(page(self.host, int(path[3:]), self.pages))
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def serve(hosts: int, pages: int, latency: float, ready: Connection, stop: Connection) -> None:
    async def main() -> None:
        in_flight: dict[str, int] = {}
        peak: dict[str, int] = {}
        loop = asyncio.get_running_loop()
        servers = []
        for i in range(hosts):
            address = host_address(i)
            servers.append(
                await loop.create_server(
                    lambda a=address: Serve(a, pages, latency, in_flight, peak),
                    address,
                    PORT,  # type: ignore[misc]
                )
            )
        ready.send("ready")
        while not stop.poll():
            await asyncio.sleep(0.1)
            if stop.poll():
                break
        stop.recv()
        ready.send(max(peak.values(), default=0))
        for server in servers:
            server.close()

    asyncio.run(main())


def crawl(hosts: int, concurrency: int, parser: str, work: Path) -> tuple[float, float, int]:
    """(the crawl's own elapsed seconds, CPU seconds of its process, pages stored)."""
    seeds = work / "seeds.txt"
    seeds.write_text("".join(f"http://{host_address(i)}:{PORT}/p/0\n" for i in range(hosts)))
    output = work / f"out-{parser}-{concurrency}"
    stats = work / f"stats-{parser}-{concurrency}.json"
    command = [
        sys.executable, "-m", "crawlpool", "crawl", str(seeds), "-o", str(output), "-q",
        "--no-robots", "--per-host", "2", "--concurrency", str(concurrency), "--parser", parser,
        "--stats-json", str(stats), "--frontier", "memory",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": SRC})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    numbers = json.loads(stats.read_text())
    # The crawl's own elapsed time (the interpreter's start-up apart); CPU includes the start-up.
    return float(numbers["elapsed_s"]), cpu, int(numbers["pages"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()
    print(f"{args.hosts} hosts x {args.pages} pages, every answer {args.latency:g} s late, --per-host 2")
    print("| parser | C | pages/s | share of bound | CPU ms/page | most in flight to one host |")
    print("|---|--:|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in args.concurrency:
            for link_parser in ("bs4", "lxml"):
                ready_a, ready_b = multiprocessing.Pipe()
                stop_a, stop_b = multiprocessing.Pipe()
                server = multiprocessing.Process(
                    target=serve, args=(args.hosts, args.pages, args.latency, ready_b, stop_b)
                )
                server.start()
                assert ready_a.recv() == "ready"
                wall, cpu, pages = crawl(args.hosts, concurrency, link_parser, Path(tmp))
                stop_a.send("stop")
                most = ready_a.recv()
                server.join()
                bound = min(concurrency, args.hosts * 2) / args.latency
                rate = pages / wall
                print(
                    f"| {link_parser} | {concurrency} | {rate:,.0f} | {rate / bound:.0%} | "
                    f"{cpu * 1000 / max(pages, 1):.2f} | {most} |"
                )


if __name__ == "__main__":
    main()
