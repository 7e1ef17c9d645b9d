"""A worker process of a crawl (`python -m crawlpool.multiproc.worker FD`, started by `pool.py`): an
engine like the first process's, fetching, parsing and storing pages with its own event loop and its
own core, whose frontier is the first process's (`remote.py`).

It writes pages and temp files under the crawl's output directory as the first process does (temp
names carry the pid, paths are one per URL, and a URL is leased to one process at a time), but no
manifest line: the first process writes each record's line once its ack commits, so the crawl keeps one
manifest and its exactly-once rule whichever process fetched the page. Its log records go to the first
process, which shows them as its own. It ignores terminal signals (it runs in its own session): it
stops when told to, gracefully, or at once when the first process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from crawlpool.assembly import archive_writer, assembled_engine
from crawlpool.config import CrawlConfig
from crawlpool.frontier import FrontierCounts
from crawlpool.multiproc.remote import RemoteFrontier
from crawlpool.multiproc.wire import BEAT_S, Channel, ChannelClosed
from crawlpool.records import Page
from crawlpool.stats import CrawlStats
from crawlpool.store import Manifest

COUNTERS = ("requests", "retries", "robots_blocked")  # what only the fetching process counts


class _NoManifest(Manifest):
    """The first process writes the manifest."""

    def __init__(self, output: Path) -> None:
        super().__init__(output)

    async def __aenter__(self) -> Manifest:
        return self

    def append(self, page: Page) -> None:
        pass


class _Forward(logging.Handler):
    """Sends each log record to the first process, formatted, with the fields its handlers read."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        extra = {key: getattr(record, key) for key in ("url", "code") if hasattr(record, key)}
        with contextlib.suppress(ChannelClosed):
            self._channel.send(("log", record.levelno, record.name, message, extra))


def counters(stats: CrawlStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in COUNTERS}


async def serve(channel: Channel) -> int:
    init = await channel.receive()
    _, cfg, crawl_cfg, seeds, log_level = init
    assert isinstance(cfg, CrawlConfig) and isinstance(crawl_cfg, CrawlConfig)
    logger = logging.getLogger("crawlpool")
    logger.handlers[:] = [_Forward(channel)]
    logger.setLevel(log_level)
    logger.propagate = False
    remote = RemoteFrontier(channel)
    stats: CrawlStats | None = None
    async with (
        archive_writer(crawl_cfg) as archive,  # its own files, described by the crawl's options
        assembled_engine(
            cfg,
            seeds,
            frontier=remote,
            manifest=_NoManifest(cfg.output),
            on_page=lambda page: None,
            parse_processes=0,
            archive=archive,
            finished=lambda counts: _over(remote, counts),
        ) as engine,
    ):
        stats = engine.stats
        remote.counters = lambda: counters(engine.stats)
        engine.tells_records = False  # the first process says what it commits, once
        crawl = asyncio.create_task(engine.run([]))
        reader = asyncio.create_task(_read(channel, remote, crawl))
        beat = asyncio.create_task(_beat(channel, stats))
        try:
            await asyncio.wait([crawl])
        finally:
            reader.cancel()
            beat.cancel()
        if not crawl.cancelled() and crawl.exception() is not None:
            error = crawl.exception()
            if not remote.over:  # after the first process said "over", nothing is lost
                logging.getLogger(__name__).error("worker process stopped: %s", error)
    with contextlib.suppress(ChannelClosed):
        channel.send(("bye", counters(stats)))
        await channel.drain()
    return 0


async def _beat(channel: Channel, stats: CrawlStats) -> None:
    """Say every BEAT_S that this process is alive, with its counters so far."""
    while True:
        with contextlib.suppress(ChannelClosed):
            channel.send(("beat", counters(stats)))
        await asyncio.sleep(BEAT_S)


def _over(remote: RemoteFrontier, counts: FrontierCounts) -> bool:
    return remote.over


async def _read(channel: Channel, remote: RemoteFrontier, crawl: asyncio.Task[Any]) -> None:
    try:
        while True:
            message = await channel.receive()
            if message[0] == "reply":
                _, call_id, ok, value = message
                remote.answered(call_id, ok, value)
            elif message[0] == "lost":
                remote.lost(message[1])
            elif message[0] == "stop":
                crawl.cancel()  # the engine's graceful stop: in-flight requests get grace_s
    except ChannelClosed:
        remote.lost("the crawl's first process is gone")
        for _ in range(2):  # at once: nothing can be committed any more
            crawl.cancel()
            await asyncio.sleep(0)


def main() -> int:
    sock = socket.socket(fileno=int(sys.argv[1]))

    async def run() -> int:
        return await serve(await Channel.over(sock))

    try:
        return asyncio.run(run())
    except (ChannelClosed, KeyboardInterrupt):
        return 1


if __name__ == "__main__":
    sys.exit(main())
