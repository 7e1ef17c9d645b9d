"""The Python API: `crawl`, `iter_crawl`, `crawl_sync`.

`crawl` and `iter_crawl` run on the caller's event loop (a notebook's included): they never call
`asyncio.run`, never configure logging and never install signal handlers. To stop a crawl, cancel the
task awaiting it (or leave the `async for` early): the crawl's session and files are closed on the way out.
Everything a crawl uses (the one ClientSession, the frontier, the store, the clock) is built here and
passed down; nothing is global.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from crawlpool.assembly import archive_writer, assembled_engine
from crawlpool.config import CrawlConfig
from crawlpool.dashboard.address import parse_address, token_for
from crawlpool.engine import Engine
from crawlpool.errors import ConfigError, FrontierError
from crawlpool.frontier import (
    ConfirmsRecords,
    Frontier,
    Politeness,
    default_crawl_id,
    is_redis,
    new_worker_id,
    open_frontier,
    read_location,
    sqlite_path,
    without_password,
    write_location,
)
from crawlpool.multiproc.pool import WorkerProcesses
from crawlpool.outcome import ENDED_META_KEY
from crawlpool.progress import ProgressReporter
from crawlpool.records import Page
from crawlpool.recrawl import Recrawl, start_update, write_changes
from crawlpool.rejoin import CRAWL_IDENTITY_KEY, crawl_identity
from crawlpool.seeds import check_seed_urls
from crawlpool.stats import CrawlStats
from crawlpool.store import Manifest, clear_temp_files, prepare_output, rewrite_manifest, with_manifest
from crawlpool.warc_index import WARC_DIR, repair_warc_files

DNS_CACHE_TTL_S = 300
log = logging.getLogger(__name__)


@dataclass(slots=True)
class CrawlResult:
    """What `crawl` returns: this run's records and counters. After `resume=True` the crawl's earlier
    records are in the manifest, not in `pages`: `all_pages()` reads every record of the crawl."""

    pages: list[Page]
    stats: CrawlStats
    output: Path
    manifest: Path = field(init=False)

    def __post_init__(self) -> None:
        self.manifest = self.output / "manifest.jsonl"

    def all_pages(self) -> list[Page]:
        """Every record of the crawl in OUTPUT, earlier runs included (read from the manifest)."""
        from crawlpool.reports import read_manifest

        return [Page.from_dict(record) for record in read_manifest(self.output)]

    def to_dataframe(self) -> Any:
        """The records as a pandas.DataFrame: one row per page, the manifest's fields as columns in
        order, `fetched_at` as a UTC datetime and `status` as a nullable integer (<NA>: no response).

        pandas is optional: raises ImportError saying how to install it when it is missing."""
        import importlib  # pandas is imported by name so that mypy needs no pandas stubs

        from crawlpool.records import MANIFEST_FIELDS

        try:
            pd = importlib.import_module("pandas")
        except ImportError as err:
            raise ImportError(
                "CrawlResult.to_dataframe() needs pandas: pip install pandas "
                "(or pip install 'crawlpool[notebook]')"
            ) from err
        rows = [[getattr(page, name) for name in MANIFEST_FIELDS] for page in self.pages]
        frame = pd.DataFrame(rows, columns=list(MANIFEST_FIELDS))
        frame["status"] = frame["status"].astype("Int64")
        frame["fetched_at"] = pd.to_datetime(frame["fetched_at"], utc=True, format="ISO8601")
        return frame


@dataclass(frozen=True, slots=True)
class Progress:
    """How to show a crawl's progress: a rich live display (`live=True`; in Jupyter it needs
    ipywidgets), or one status line every `interval_s` (`json_lines`: each one a JSON object, the
    `progress` event). `console` defaults to rich's `Console()`."""

    live: bool = True
    interval_s: float = 10.0
    console: Console | None = None
    json_lines: bool = False


async def crawl(
    seeds: Iterable[str],
    config: CrawlConfig | None = None,
    *,
    progress: bool | Progress = False,
    **options: Any,
) -> CrawlResult:
    """Crawl from `seeds` and return every record. Options are CrawlConfig fields and override `config`.
    `progress=True` shows a live display (off by default: a notebook cell stays quiet unless asked).

    Raises UsageError (ConfigError/SeedError) before any request for bad options or seeds."""
    pages: list[Page] = []
    with _in_api_terms():
        cfg, urls = prepare(seeds, config, options)
        stats = await run_crawl(cfg, urls, pages.append, progress=_progress(progress))
    return CrawlResult(pages, stats, cfg.output)


async def iter_crawl(
    seeds: Iterable[str],
    config: CrawlConfig | None = None,
    *,
    progress: bool | Progress = False,
    **options: Any,
) -> AsyncIterator[Page]:
    """Crawl from `seeds`, yielding each record as it is committed.

    Closing the generator stops the crawl; to stop it the moment you leave the loop, iterate inside
    `async with contextlib.aclosing(iter_crawl(...)) as pages:` (otherwise Python closes an abandoned
    async generator only when it is garbage-collected)."""
    with _in_api_terms():
        cfg, urls = prepare(seeds, config, options)
    pages: asyncio.Queue[Page | None] = asyncio.Queue()
    task = asyncio.create_task(run_crawl(cfg, urls, pages.put_nowait, progress=_progress(progress)))
    task.add_done_callback(lambda _: pages.put_nowait(None))
    try:
        while (page := await pages.get()) is not None:
            yield page
        with _in_api_terms():
            await task  # re-raises the crawl's fatal error, if any
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def crawl_sync(seeds: Iterable[str], config: CrawlConfig | None = None, **options: Any) -> CrawlResult:
    """`crawl` for plain scripts. Raises RuntimeError inside a running event loop (use `await crawl`)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(crawl(seeds, config, **options))
    raise RuntimeError(
        "crawl_sync() cannot run inside a running event loop (as in Jupyter); "
        "use `await crawlpool.crawl(...)` there instead"
    )


# A refusal names the CLI's flags; to a caller of the API it names the keyword arguments instead.
_API_TERMS = (
    ("--processes 1 (or auto)", "processes=1 (or 'auto')"),
    ("add --resume", "pass resume=True"),
    ("--resume", "resume=True"),
    ("--frontier", "frontier="),
    ("--crawl-id ", "crawl_id="),
    ("--crawl-id", "crawl_id"),
)


@contextlib.contextmanager
def _in_api_terms() -> Iterator[None]:
    """Re-raise a ConfigError whose message names CLI flags with the API's keyword arguments."""
    try:
        yield
    except ConfigError as exc:
        message = str(exc)
        for flag, keyword in _API_TERMS:
            message = message.replace(flag, keyword)
        raise type(exc)(message) from None


def _progress(progress: bool | Progress) -> Progress | None:
    if isinstance(progress, Progress):
        return progress
    return Progress() if progress else None


def prepare(
    seeds: Iterable[str], config: CrawlConfig | None, options: dict[str, Any]
) -> tuple[CrawlConfig, list[str]]:
    """The validated config and seeds, and an output directory ready for them (the CLI shares this)."""
    cfg = (config or CrawlConfig()).replace(**options) if options else (config or CrawlConfig())
    if not isinstance(cfg, CrawlConfig):
        raise ConfigError(f"config: expected a CrawlConfig, got {type(cfg).__name__}")
    urls = check_seed_urls(seeds)
    if is_redis(cfg.frontier) and cfg.crawl_id is None:
        cfg = cfg.replace(crawl_id=default_crawl_id(urls))
    state_file = sqlite_path(cfg.frontier, cfg.output)
    if cfg.update and not cfg.resume:
        start_update(cfg.output, state_file)  # the crawl there becomes the previous run
    prepare_output(cfg.output, resume=cfg.resume, state_file=state_file, resumable=cfg.frontier != "memory")
    return cfg, urls


async def run_crawl(
    cfg: CrawlConfig,
    seeds: list[str],
    on_page: Callable[[Page], None],
    *,
    progress: Progress | None = None,
    on_engine: Callable[[Engine], None] | None = None,
    on_dashboard: Callable[[str], None] | None = None,
) -> CrawlStats:
    """Run one crawl (shared by the API and the CLI); `on_engine` sees the engine before it starts,
    so the CLI can still report its counters after the crawl is cancelled."""
    worker_id, resumed_worker = _worker_id(cfg)
    frontier = await open_frontier(
        cfg.frontier,
        Politeness(cfg.per_host, cfg.delay_s),
        output=cfg.output,
        crawl_id=cfg.crawl_id,
        lease_s=cfg.lease_s,
        worker_id=worker_id,
    )
    try:
        # A Redis worker's records are found by its worker id: without the recorded one, keep the manifest.
        await _begin(frontier, cfg, seeds, repair=resumed_worker or not is_redis(cfg.frontier))
        write_location(cfg.output, cfg.frontier, cfg.crawl_id, worker_id)
    except BaseException:
        await frontier.aclose()
        raise
    engine_stats: CrawlStats | None = None  # kept, so that how the crawl ended is saved with it
    recrawl = Recrawl.open(cfg.output)  # an update run (new or resumed) has its previous run
    try:
        async with (
            Manifest(cfg.output) as manifest,
            archive_writer(cfg) as archive,
            assembled_engine(
                cfg,
                seeds,
                frontier=frontier,
                manifest=manifest,
                on_page=on_page,
                parse_processes=cfg.parse_processes,
                recrawl=recrawl,
                archive=archive,
            ) as engine,
        ):
            if isinstance(frontier, ConfirmsRecords):  # the manifest is repaired: records may go
                frontier.confirm_with(manifest.sync)
            engine_stats = engine.stats
            if on_engine is not None:
                on_engine(engine)
            async with _showing(progress, engine), _dashboard(cfg, engine, on_dashboard):
                processes = cfg.process_count
                if processes > 1:
                    workers = WorkerProcesses(engine, frontier, cfg, seeds, processes, archive=archive)
                    return await workers.run(seeds)
                return await engine.run(seeds)
    finally:
        with contextlib.suppress(FrontierError):  # a failed store already said why
            await frontier.set_meta("updated", _utc_now())
            if engine_stats is not None:
                await frontier.set_meta(ENDED_META_KEY, engine_stats.outcome)
            if recrawl is not None:
                counts = await frontier.counts()
                write_changes(cfg.output, recrawl.run, finished=not (counts.queued or counts.leased))
        if recrawl is not None:
            recrawl.close()
        await frontier.aclose()


@contextlib.asynccontextmanager
async def _dashboard(
    cfg: CrawlConfig, engine: Engine, on_dashboard: Callable[[str], None] | None
) -> AsyncIterator[None]:
    """Serve the live dashboard beside the crawl when `cfg.dashboard` asks for it; its URL goes to
    `on_dashboard` (the CLI prints it) and to the log."""
    if cfg.dashboard is None:
        yield
        return
    from crawlpool.dashboard.server import serving
    from crawlpool.dashboard.source import LiveSource

    address = parse_address(cfg.dashboard)
    async with serving(
        LiveSource(engine, cfg.output), address, token_for(address, cfg.dashboard_token)
    ) as url:
        log.info("dashboard at %s", url)
        if on_dashboard is not None:
            on_dashboard(url)
        yield


@contextlib.asynccontextmanager
async def _showing(progress: Progress | None, engine: Engine) -> AsyncIterator[None]:
    """Run a progress reporter beside the crawl; a display failure never stops the crawl."""
    if progress is None:
        yield
        return
    reporter = ProgressReporter(
        engine.snapshot,
        console=progress.console or Console(),
        live=progress.live and not progress.json_lines,
        interval_s=progress.interval_s,
        json_lines=progress.json_lines,
    )
    task = asyncio.create_task(reporter.run(), name="crawlpool progress")
    try:
        yield
    finally:
        reporter.stop()
        try:
            await task
        except Exception:  # the display is a convenience: log it, keep the crawl's own outcome
            log.exception("progress display failed")


_IDENTITY_FIELDS = ("seeds", "scope", "include", "exclude")


def _worker_id(cfg: CrawlConfig) -> tuple[str, bool]:
    """The worker id OUTPUT crawled under when it resumes (a shared crawl keeps each worker's records
    under its id) and True, else a new one and False. Raises ConfigError when OUTPUT's crawl is another
    crawl id."""
    location = read_location(cfg.output) if cfg.resume else None
    if location is None or location.worker_id is None:
        return new_worker_id(), False
    if is_redis(cfg.frontier) and location.crawl_id is None:
        raise ConfigError(
            f"resume: the crawl in {cfg.output} keeps its state in {location.frontier}; "
            "resume it with that --frontier"
        )
    if is_redis(cfg.frontier) and location.crawl_id != cfg.crawl_id:
        raise ConfigError(
            f"resume: the crawl in {cfg.output} is crawl {location.crawl_id} at {location.frontier}, "
            f"not {cfg.crawl_id}; resume it with the seeds it was started with, or --crawl-id "
            f"{location.crawl_id}"
        )
    return location.worker_id, True


async def _begin(frontier: Frontier, cfg: CrawlConfig, seeds: list[str], *, repair: bool) -> None:
    """Bind the frontier to this crawl: record what defines the crawl on a new one; on one that exists,
    refuse a different crawl, then on resume repair the output (leftover temp files, and with `repair`
    the manifest, rewritten from the records the frontier committed for this process)."""
    identity = json.dumps(crawl_identity(cfg, seeds), sort_keys=True)
    clear_temp_files(cfg.output)
    stored = await frontier.claim_meta(CRAWL_IDENTITY_KEY, identity)
    if stored is None:
        await frontier.set_meta("started", _utc_now())
        return
    if stored != identity:
        raise ConfigError(_identity_difference(json.loads(stored), json.loads(identity), cfg))
    if cfg.resume and repair:
        archived: dict[str, int] = {}  # per WARC file, the offset of its last committed response
        pages = frontier.committed_pages()
        if is_redis(cfg.frontier):  # it keeps only the records the manifest may lack
            pages = with_manifest(cfg.output, pages)
        repaired = await rewrite_manifest(cfg.output, _noting_archive(pages, archived))
        log.info("resuming the crawl in %s: %d records kept", cfg.output, repaired)
        if (cfg.output / WARC_DIR).is_dir():
            dropped = await asyncio.to_thread(repair_warc_files, cfg.output / WARC_DIR, archived)
            if dropped:
                log.info("resuming: %d WARC records without a committed record were dropped", dropped)


async def _noting_archive(pages: AsyncIterator[Page], archived: dict[str, int]) -> AsyncIterator[Page]:
    async for page in pages:
        if page.warc_file is not None and page.warc_offset is not None:
            archived[page.warc_file] = max(archived.get(page.warc_file, -1), page.warc_offset)
        yield page


def _identity_difference(before: dict[str, Any], now: dict[str, Any], cfg: CrawlConfig) -> str:
    changed = [name for name in _IDENTITY_FIELDS if before.get(name) != now.get(name)]
    values = "; ".join(f"{name}: {before.get(name)}" for name in changed)
    was = f"was started with other {' and '.join(changed)} ({values})"
    if is_redis(cfg.frontier) and not cfg.resume:
        return (
            f"join: crawl {cfg.crawl_id} at {without_password(cfg.frontier)} {was}; join it with the "
            "same ones, or start a new crawl with another --crawl-id"
        )
    return (
        f"resume: the crawl in {cfg.output} {was}; resume it with the same ones, "
        "or start a new crawl in another directory"
    )


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
