"""An engine with everything it works through: one aiohttp session behind the address guard, the
fetchers, the robots.txt cache and the link parser. The crawl's first process and each of its worker
processes (`multiproc`) assemble theirs the same way; only the frontier and the manifest differ."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import aiohttp

from crawlpool._version import __version__
from crawlpool.addresses import AddressGuard, AddressPolicy
from crawlpool.config import CrawlConfig
from crawlpool.engine import Engine
from crawlpool.fetch import Fetcher, Response
from crawlpool.frontier import Frontier, FrontierCounts, without_password
from crawlpool.guarded import GuardedConnector
from crawlpool.parsing import LinkParser
from crawlpool.records import Page
from crawlpool.recrawl import Recrawl
from crawlpool.robots import ROBOTS_MAX_BYTES, RobotsCache
from crawlpool.scope import Scope
from crawlpool.store import Manifest, PageStore
from crawlpool.urls import url_host
from crawlpool.warc import WarcWriter, warcinfo_fields

DNS_CACHE_TTL_S = 300  # aiohttp's default is 10 s: a long crawl would look each host up again and again


def address_guard(cfg: CrawlConfig, seeds: Iterable[str]) -> AddressGuard:
    """The crawl's address guard: the seeds' hosts may be anywhere, other hosts only where the config
    allows (see addresses.py)."""
    policy = AddressPolicy.from_options(cfg.allow_private, cfg.allow_address)
    return AddressGuard.for_seeds((url_host(url) for url in seeds), policy)


@contextlib.asynccontextmanager
async def assembled_engine(
    cfg: CrawlConfig,
    seeds: list[str],
    *,
    frontier: Frontier,
    manifest: Manifest,
    on_page: Callable[[Page], None],
    parse_processes: int,
    recrawl: Recrawl | None = None,
    archive: WarcWriter | None = None,
    finished: Callable[[FrontierCounts], bool] | None = None,
) -> AsyncIterator[Engine]:
    connector = GuardedConnector(
        address_guard(cfg, seeds),
        limit=cfg.concurrency,
        limit_per_host=cfg.per_host,
        ttl_dns_cache=DNS_CACHE_TTL_S,
    )
    async with aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": cfg.user_agent},
        auto_decompress=False,  # the fetcher decompresses, bounded by max_bytes
        timeout=aiohttp.ClientTimeout(total=None),  # the fetcher's own deadline covers it
        middlewares=cfg.middlewares,
    ) as session:
        fetcher = Fetcher(session, timeout_s=cfg.timeout_s, max_bytes=cfg.max_bytes, archive=cfg.warc)
        robots = (
            RobotsCache(
                _archiving(
                    Fetcher(
                        session,
                        timeout_s=cfg.timeout_s,
                        max_bytes=max(cfg.max_bytes, ROBOTS_MAX_BYTES),
                        archive=cfg.warc,
                    ).fetch,
                    archive,
                ),
                cfg.user_agent,
                crawl_delay_cap_s=cfg.max_crawl_delay_s,
                store=frontier,  # the crawl's state: shared by its workers, kept across --resume
            )
            if cfg.robots
            else None
        )
        parser = LinkParser(cfg.parser, parse_processes)
        try:
            yield Engine(
                cfg,
                frontier=frontier,
                fetcher=fetcher,
                store=PageStore(cfg.output),
                manifest=manifest,
                scope=Scope(seeds, cfg.scope, cfg.include, cfg.exclude),
                on_page=on_page,
                robots=robots,
                parser=parser,
                recrawl=recrawl,
                archive=archive,
                finished=finished,
            )
        finally:
            await parser.aclose()
            if robots is not None:
                await robots.aclose()


def archive_writer(cfg: CrawlConfig) -> contextlib.AbstractAsyncContextManager[WarcWriter | None]:
    """The crawl's WARC writer with `--warc`, else None (one per process: each writes its own files)."""
    if not cfg.warc:
        return contextlib.nullcontext(None)
    options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "middlewares"}
    options["frontier"] = without_password(cfg.frontier)
    info = warcinfo_fields(options, __version__)
    return WarcWriter(cfg.output, max_bytes=cfg.warc_max_size, info=info)


def _archiving(
    fetch: Callable[[str], Awaitable[Response]], archive: WarcWriter | None
) -> Callable[[str], Awaitable[Response]]:
    """`fetch`, also archiving each exchange (robots.txt: it has no manifest record to order it by)."""
    if archive is None:
        return fetch

    async def fetch_and_archive(url: str) -> Response:
        response = await fetch(url)
        if response.exchange is not None:
            await archive.write_unrecorded(response.exchange)
        return response

    return fetch_and_archive
