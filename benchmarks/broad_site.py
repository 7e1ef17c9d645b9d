"""The broad benchmark's site and server: many loopback hosts, every answer late, in-flight counted per host.

Host i is the address `host_address(i)` (127.0.1.1, 127.0.1.2, ...: each its own host for politeness),
all on PORT. Each host has `pages` pages at `/p/0` ... `/p/{pages-1}`; page i always links to page i+1,
so every page is reachable from `/p/0`. Two page mixes:

- small (the default): a few links forward and back, ~200 bytes, so the crawlers' CPU goes on
  scheduling and HTTP rather than parsing;
- realistic (`Site.realistic`): ~PAGE_BYTES and ~LINKS links like `sitegen.py`'s pages, most of them to
  the same host (some spelled with a `#fragment`), one in ten to another host of the benchmark and one in
  ten off-site (`offsite.invalid`, never to be fetched).

The server is one asyncio process with raw protocols (no framework), so its CPU per answer stays small
next to the crawler's; it answers each request `latency` seconds after it arrived and keeps the most
requests it ever had in flight to each host. Standard library only.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from urllib.parse import urldefrag

PORT = 8090
PAGE_BYTES = 30_000
LINKS = 50
FILLER = "lorem ipsum dolor sit amet "


def host_address(i: int) -> str:
    return f"127.0.1.{i + 1}" if i < 254 else f"127.0.{2 + (i - 254) // 254}.{(i - 254) % 254 + 1}"


def root_url(host: int) -> str:
    return f"http://{host_address(host)}:{PORT}/p/0"


@dataclass(frozen=True, slots=True)
class Site:
    hosts: int
    pages: int  # per host
    realistic: bool = False

    def expected_urls(self) -> set[str]:
        return {
            f"http://{host_address(h)}:{PORT}/p/{i}" for h in range(self.hosts) for i in range(self.pages)
        }

    def links(self, host: int, i: int) -> list[str]:
        """The hrefs on page i of host `host`, in page order."""
        if not self.realistic:
            return [f"/p/{j}" for j in (i + 1, i + 2, i + 3, max(i - 1, 0)) if j < self.pages]
        hrefs = [f"/p/{(i + 1) % self.pages}"]
        x = host * self.pages + i
        for k in range(1, LINKS):
            x = (x * 1103515245 + 12345) % (2**31)  # sitegen's walk: deterministic, spread over the site
            target = x % self.pages
            if k % 10 == 5 and self.hosts > 1:
                other = (host + 1 + x % (self.hosts - 1)) % self.hosts
                hrefs.append(f"http://{host_address(other)}:{PORT}/p/{target}")
            elif k % 10 == 7:
                hrefs.append(f"http://offsite.invalid/p/{target}")
            else:
                hrefs.append(f"/p/{target}" + ("#section" if k % 10 == 3 else ""))
        return hrefs

    def page(self, host: int, i: int) -> bytes:
        """Page i of host `host`, as the body of a 200 answer."""
        anchors = "".join(f'<li><a href="{h}">link {k}</a></li>\n' for k, h in enumerate(self.links(host, i)))
        head = f"<!doctype html><html><head><title>{host_address(host)} {i}</title></head><body><ul>\n"
        tail = "</ul></body></html>\n"
        filler = ""
        if self.realistic:
            size = max(0, PAGE_BYTES - len(head) - len(anchors) - len(tail) - 8)
            filler = f"<p>{(FILLER * (size // len(FILLER) + 1))[:size]}</p>\n"
        return (head + anchors + filler + tail).encode()

    def answer(self, host: int, path: str) -> bytes:
        """The whole HTTP/1.1 response to a GET of `path` on host `host`."""
        number = path[3:] if path.startswith("/p/") else ""
        if not (number.isdigit() and int(number) < self.pages):
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        body = self.page(host, int(number))
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body


@dataclass(frozen=True, slots=True)
class Coverage:
    """How the pages a crawler stored compare with the site's."""

    pages: int  # distinct site pages stored
    missing: int  # site pages not stored
    extra: int  # distinct stored URLs that are not site pages
    repeats: int  # pages stored more than once (counted once per repeat)

    @classmethod
    def of(cls, stored: Iterable[str], expected: set[str]) -> Coverage:
        urls = [urldefrag(url).url for url in stored]  # a fragment is not part of what was fetched
        got = set(urls)
        return cls(len(got & expected), len(expected - got), len(got - expected), len(urls) - len(got))

    @property
    def status(self) -> str:
        problems = [
            f"{label} {n:,}"
            for label, n in (("MISSING", self.missing), ("extra", self.extra), ("repeated", self.repeats))
            if n
        ]
        return ", ".join(problems) or "ok"


class Serve(asyncio.Protocol):
    """One connection: answers each request after the latency; counts requests in flight per host."""

    def __init__(
        self, site: Site, host: int, latency: float, in_flight: dict[int, int], peak: dict[int, int]
    ):
        self.site, self.host, self.latency = site, host, latency
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
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.site.answer(self.host, path))


def serve(site: Site, latency: float, ready: Connection, stop: Connection) -> None:
    """Serve `site` until told to stop; then send back (the most requests each host had in flight at once,
    this process's CPU seconds)."""

    async def main() -> None:
        in_flight: dict[int, int] = {}
        peak: dict[int, int] = {}
        loop = asyncio.get_running_loop()
        servers = [
            await loop.create_server(
                lambda h=h: Serve(site, h, latency, in_flight, peak),  # type: ignore[misc]
                host_address(h),
                PORT,
            )
            for h in range(site.hosts)
        ]
        ready.send("ready")
        stopped = asyncio.Event()
        loop.add_reader(stop.fileno(), stopped.set)
        await stopped.wait()
        loop.remove_reader(stop.fileno())
        stop.recv()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        ready.send((list(peak.values()), usage.ru_utime + usage.ru_stime))
        for server in servers:
            server.close()

    asyncio.run(main())
