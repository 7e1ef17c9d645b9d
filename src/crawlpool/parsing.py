"""Link extraction off the event loop: a process pool, so that a large page never stalls fetching and a
crawl uses more than one core.

`LinkParser.links(body, url, content_type)` runs the configured extractor (`--parser`) in one of
`--parse-workers` processes, or inline when that is 0. The pool starts only once a crawl has parsed
`POOL_AFTER_PAGES` pages inline: starting Python processes costs about half a second, which a small
crawl would never win back. The processes are spawned (not forked: the crawler has threads) and die
with the crawler, so a kill -9 leaves no orphans. If a worker process dies (killed, out of memory), the
pool is broken for good: the parser logs it once and parses inline from then on; the crawl goes on.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from crawlpool.links import get_extractor

log = logging.getLogger(__name__)


def _extract(parser: str, body: bytes, url: str, content_type: str | None) -> list[str]:
    return get_extractor(parser)(body, url, content_type)


PR_SET_PDEATHSIG = 1
POOL_AFTER_PAGES = 64


def _init_worker() -> None:
    """A parse process ignores Ctrl-C (the crawler decides how to stop, and a terminal sends SIGINT to
    the whole process group) and dies with its parent, the crawler, so a kill -9 leaves no orphans."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() == 1:
        os._exit(0)  # the crawler died while this process was starting
    if sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class LinkParser:
    def __init__(self, parser: str, processes: int) -> None:
        self._parser = parser
        self._extract = get_extractor(parser)
        self._processes = processes
        self._parsed_inline = 0
        self._pool: ProcessPoolExecutor | None = None
        self._turn = asyncio.Lock()  # bound to a loop at its first contended use, not here

    def _pool_now(self) -> ProcessPoolExecutor | None:
        if self._pool is None and self._processes > 0 and self._parsed_inline >= POOL_AFTER_PAGES:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self._processes, mp_context=context, initializer=_init_worker)
            self._processes = 0  # never start a second pool (see BrokenProcessPool below)
        return self._pool

    async def links(self, body: bytes, url: str, content_type: str | None) -> list[str]:
        """Normalized absolute URLs linked from the page (see `links.extract_links`)."""
        pool = self._pool_now()
        loop = asyncio.get_running_loop()
        if pool is None:
            self._parsed_inline += 1
            return await self._inline(loop, body, url, content_type)
        try:
            return await loop.run_in_executor(pool, _extract, self._parser, body, url, content_type)
        except BrokenProcessPool:
            if self._pool is not None:
                log.warning("a link-extraction process died; parsing on the event loop from now on")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            return await self._inline(loop, body, url, content_type)

    async def _inline(
        self, loop: asyncio.AbstractEventLoop, body: bytes, url: str, content_type: str | None
    ) -> list[str]:
        """Parse on the event loop, one page per turn of the loop: the turn is handed on only at the
        next turn, after the loop has polled its sockets. Pages whose answers came in together (a
        wave: requests sent together come back together) would otherwise all be parsed before the
        loop sends a single new request, and a crawl would alternate between waiting and parsing; a
        broad crawl with two worker processes kept each at half a core that way."""
        await self._turn.acquire()
        try:
            return self._extract(body, url, content_type)
        finally:
            loop.call_soon(self._turn.release)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, lambda: pool.shutdown(cancel_futures=True))
