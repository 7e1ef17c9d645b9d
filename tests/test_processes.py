"""`--processes`: worker processes share one crawl with the first process, which keeps its frontier and
manifest. Crawls run as subprocesses against a generated site on 127.0.0.1; what the crawl prints at
-v (`worker process P is crawling`) and the site's own request count say when to act, so no test
sleeps to wait for a moment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

import crawlpool
from crawlpool.config import CrawlConfig
from crawlpool.engine import Engine
from crawlpool.errors import ConfigError
from crawlpool.frontier import Politeness, Request
from crawlpool.frontier.memory import MemoryFrontier
from crawlpool.multiproc import pool
from crawlpool.policy.rules import make_request
from crawlpool.scope import Scope
from crawlpool.store import Manifest, PageStore, prepare_output
from tests.generated_site import SRC, Site, assert_complete_and_exactly_once, finish
from tests.test_resume import _run_cli
from tests.test_warc import assert_archive_matches_manifest, warcio_check

pytestmark = pytest.mark.slow  # wall-clock crawls with real processes

SEED = "http://127.0.0.1:8000/"
PAGES = 900  # workers start after 200 stored pages: the crawl must outlast their start-up
JOINED = re.compile(r"worker process (\d+) is crawling")
COMMITTED = re.compile(r"worker processes committed (\d+) of the (\d+) records")


async def start(base: str, output: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", "crawl", base + "/", "-o", str(output), "--concurrency", "8",
        "--per-host", "4", "--retries", "0", "--processes", "3", "-v", "--progress-interval", "3600",
        *extra, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip


def gated() -> Site:
    """A site that holds its answers after the first 250 until the test opens its gate."""
    return Site(pages=PAGES, delay_s=0.005, gate_after=250)


class Watch:
    """Reads a crawl's stderr as it comes. Each worker that says it is crawling is noted, and the
    site's gate opens once `open_at` workers have (and again after each later one): the crawl cannot
    end before the workers it waits for take part, however slowly the machine starts them."""

    def __init__(self, proc: asyncio.subprocess.Process, site: Site, open_at: int = 2) -> None:
        self.proc = proc
        self.site = site
        self.open_at = open_at
        self.lines: list[str] = []
        self.joined: list[int] = []
        self._change = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := (await self.proc.stderr.readline()).decode():
            self.lines.append(line)
            if found := JOINED.search(line):
                self.joined.append(int(found.group(1)))
                if len(self.joined) >= self.open_at:
                    self.site.gate.set()
                self._change.set()
        self._change.set()

    async def until_joined(self, count: int) -> list[int]:
        """The pids of the first `count` workers that crawled, once they have."""
        async with asyncio.timeout(60):
            while len(self.joined) < count:
                assert not self._task.done(), "the crawl ended first:\n" + "".join(self.lines)
                self._change.clear()
                await self._change.wait()
        return self.joined[:count]

    async def finish(self) -> tuple[int, str]:
        code = await asyncio.wait_for(self.proc.wait(), timeout=120)
        await self._task
        return code, "".join(self.lines)


async def gone(pid: int, timeout_s: float = 30) -> None:
    """Wait until process `pid` (not a child of ours) has ended: its pidfd becomes readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, ended.set)
    try:
        await asyncio.wait_for(ended.wait(), timeout=timeout_s)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def act_after(site: Site, watch: list[Watch], action: Callable[[], None], more_requests: int = 40) -> None:
    """Once the gate is open (the workers crawl), act `more_requests` requests later."""
    armed: list[int] = []

    def on_request(count: int) -> None:
        if not site.gate.is_set() or not watch:
            return
        if not armed:
            armed.append(count)
        elif count == armed[0] + more_requests:
            action()

    site.on_request = on_request


async def signal_the_first_process(
    site: Site, base: str, output: Path, sig: signal.Signals
) -> tuple[list[int], int, str]:
    """Crawl `site` and send `sig` to the first process 40 requests after both workers crawl: the
    workers' pids, its exit code and what it printed."""
    watch: list[Watch] = []
    act_after(site, watch, lambda: os.kill(watch[0].proc.pid, sig))
    watch.append(Watch(await start(base, output), site))
    workers = await watch[0].until_joined(2)
    code, err = await watch[0].finish()
    return workers, code, err


async def test_workers_crawl_every_page_once_within_the_per_host_limit(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = gated()
    base = await serve(site)
    output = tmp_path / "out"
    watch = Watch(await start(base, output), site)
    code, err = await watch.finish()
    assert code == 0, err
    assert len(set(watch.joined)) == 2, err
    committed = COMMITTED.search(err)
    assert committed is not None, err
    # One host's 4 slots for 3 processes: a slot the first process frees goes to a worker waiting for
    # one (they had 7 of the 900 when the first process took its freed slots back every time; about
    # 230 since, and the bound leaves room for a loaded machine).
    assert int(committed.group(1)) >= PAGES // 30 and int(committed.group(2)) == PAGES
    assert_complete_and_exactly_once(output, site.urls(base))
    assert site.max_in_flight <= 4  # --per-host 4, whichever process sent them
    assert f"pages stored    {PAGES}" in err


async def test_a_killed_worker_loses_nothing_and_another_takes_its_place(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = gated()
    base = await serve(site)
    output = tmp_path / "out"
    watch: list[Watch] = []

    def kill_a_worker() -> None:
        site.gate.clear()  # until the one that takes its place crawls too
        os.kill(watch[0].joined[0], signal.SIGKILL)

    act_after(site, watch, kill_a_worker)
    watch.append(Watch(await start(base, output), site, open_at=2))
    code, err = await watch[0].finish()
    assert code == 0, err
    assert f"worker process {watch[0].joined[0]} was killed by signal 9" in err
    assert "starting another" in err
    assert len(set(watch[0].joined)) == 3, err  # two, then the one that took the killed one's place
    assert_complete_and_exactly_once(output, site.urls(base))
    tried = re.search(r"URLs tried +([\d,]+) \(([\d,]+) page requests\)", err)
    assert tried is not None, err
    assert int(tried.group(2).replace(",", "")) >= PAGES  # the killed worker's requests count too


@pytest.mark.parametrize("kill", [False, True], ids=["all-end-well", "a-worker-killed"])
async def test_warc_files_of_every_process_hold_each_committed_exchange_once(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path, kill: bool
) -> None:
    site = gated()
    base = await serve(site)
    output = tmp_path / "out"
    watch: list[Watch] = []
    killed: list[int] = []

    def kill_a_worker() -> None:
        site.gate.clear()
        os.kill(watch[0].joined[0], signal.SIGKILL)
        killed.append(watch[0].joined[0])

    if kill:
        act_after(site, watch, kill_a_worker)
    watch.append(Watch(await start(base, output, "--warc", "--warc-max-size", "300k"), site))
    code, err = await watch[0].finish()
    assert code == 0, err
    assert bool(killed) == kill  # (what the crawl says of it is the other kill test's)
    assert_complete_and_exactly_once(output, site.urls(base))
    warcio_check(output)
    assert_archive_matches_manifest(output)  # each committed exchange once, over every process's files
    names = [path.name for path in (output / "warc").glob("*.warc.gz")]
    assert len(names) == len(set(names)) >= 3  # the first process's and each worker's, rotated
    assert all((output / "warc" / name.replace(".warc.gz", ".cdxj")).exists() for name in names)


async def test_when_the_first_process_is_killed_its_workers_end_and_resume_completes(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = gated()
    base = await serve(site)
    output = tmp_path / "out"
    workers, code, err = await signal_the_first_process(site, base, output, signal.SIGKILL)
    assert code == -signal.SIGKILL, err
    for pid in workers:
        await gone(pid)  # its socket closed: it ended without being told
    site.on_request = lambda count: None
    code, err = await finish(await start(base, output, "--resume"))
    assert code == 0, err
    assert_complete_and_exactly_once(output, site.urls(base))


async def test_ctrl_c_stops_every_process_gracefully_and_resume_completes(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = gated()
    base = await serve(site)
    output = tmp_path / "out"
    workers, code, err = await signal_the_first_process(site, base, output, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    assert "crawl stopped before it was done" in err
    said = re.search(r"crawl stopped before it was done with ([\d,]+) URLs queued", err)
    code, status, _ = await _run_cli("status", str(output))
    assert said is not None and f"with {said.group(1)} URLs queued" in status, (err, status)
    for pid in workers:
        await gone(pid)
    stopped = [json.loads(line)["url"] for line in (output / "manifest.jsonl").read_text().splitlines()]
    assert len(stopped) == len(set(stopped)) and len(stopped) < PAGES
    site.on_request = lambda count: None
    code, err = await finish(await start(base, output, "--resume"))
    assert code == 0, err
    assert_complete_and_exactly_once(output, site.urls(base))


async def test_max_pages_counts_the_pages_of_every_process(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "START_AFTER_PAGES", 20)  # the workers start early in this process
    site = Site(pages=PAGES, delay_s=0.005)
    base = await serve(site)
    result = await crawlpool.crawl(
        [base + "/"], output=tmp_path / "out", processes=3, max_pages=300, concurrency=8, per_host=4
    )
    assert result.stats.pages == 300
    records = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert len(records) == 300
    assert result.stats.outcome == "max_pages"


class _Joins(logging.Handler):
    """Notes each worker that says it is crawling (this process's own log: the API crawl)."""

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        self.pids: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if found := JOINED.search(record.getMessage()):
            self.pids.append(int(found.group(1)))
            if len(self.pids) == 2:
                self.site.gate.set()


async def test_a_worker_that_stops_answering_is_ended_and_the_crawl_completes(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "SILENT_S", 1.5)  # a worker beats every second
    site = gated()
    base = await serve(site)
    joins = _Joins(site)
    stopped: list[int] = []

    def pause_a_worker(count: int) -> None:
        if site.gate.is_set() and not stopped and len(joins.pids) == 2:
            stopped.append(joins.pids[0])
            os.kill(joins.pids[0], signal.SIGSTOP)  # hung: alive, holding its leases, silent

    site.on_request = pause_a_worker
    logger = logging.getLogger("crawlpool")
    logger.addHandler(joins)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with caplog_warnings() as warnings:
            result = await crawlpool.crawl(
                [base + "/"], output=tmp_path / "out", processes=3, concurrency=8, per_host=4, retries=0
            )
    finally:
        logger.removeHandler(joins)
        logger.setLevel(level)
        for pid in stopped:  # ended by the crawl; in case it was not, never leave it stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert stopped and any(f"worker process {stopped[0]} stopped answering" in w for w in warnings), warnings
    assert result.stats.pages == PAGES
    assert_complete_and_exactly_once(tmp_path / "out", site.urls(base))


@contextlib.contextmanager
def caplog_warnings() -> Iterator[list[str]]:
    """The warnings crawlpool logs inside the block, as text."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                said.append(record.getMessage())

    handler = Keep()
    logging.getLogger("crawlpool").addHandler(handler)
    try:
        yield said
    finally:
        logging.getLogger("crawlpool").removeHandler(handler)


def test_the_first_process_keeps_a_share_of_the_slots_and_crawls_with_what_no_worker_has() -> None:
    engine = SimpleNamespace(slots=8)
    cfg = CrawlConfig(concurrency=8, processes=3)
    workers = pool.WorkerProcesses(engine, None, cfg, [], cfg.process_count)  # type: ignore[arg-type]
    assert workers._worker_config().concurrency == 2  # 8 slots over 3 processes: 2, 2 and 4 for it

    def worker(*, joined: bool = True, returncode: int | None = None) -> pool._Worker:
        process = SimpleNamespace(pid=0, returncode=returncode)
        return pool._Worker(process, channel=None, joined=joined)  # type: ignore[arg-type]

    workers._workers = [worker(joined=False), worker(joined=False)]
    workers._share_slots()
    assert engine.slots == 8  # none crawls yet
    workers._workers[0].joined = True
    workers._share_slots()
    assert engine.slots == 6
    workers._workers[1].joined = True
    workers._share_slots()
    assert engine.slots == 4  # every worker crawls: it keeps its own share and the rest
    workers._workers[0].process.returncode = -9
    workers._share_slots()
    assert engine.slots == 6  # a dead worker's share comes back


def test_auto_starts_workers_only_for_a_large_crawl_this_process_holds_back() -> None:
    large = (pool.START_AFTER_PAGES, 33, 32)
    assert pool.worth_starting(*large, busy=0.9, processes="auto")
    assert not pool.worth_starting(*large, busy=0.2, processes="auto")  # the sites are the limit
    assert pool.worth_starting(*large, busy=0.2, processes=2)  # asked for: started on size alone
    assert not pool.worth_starting(pool.START_AFTER_PAGES - 1, 33, 32, busy=1.0, processes=2)
    assert not pool.worth_starting(pool.START_AFTER_PAGES, 32, 32, busy=1.0, processes=2)
    assert pool.worth_starting(*large, busy=None, processes=2)  # no need to wait for a whole window
    assert not pool.worth_starting(*large, busy=None, processes="auto")
    likely = (pool.PREPARE_AFTER_PAGES, 33, 32)
    assert pool.worth_preparing(*likely, busy=None, processes=2)
    assert pool.worth_preparing(*likely, busy=0.9, processes="auto")
    assert not pool.worth_preparing(*likely, busy=0.2, processes="auto")
    assert not pool.worth_preparing(*likely, busy=None, processes="auto")
    assert not pool.worth_preparing(pool.PREPARE_AFTER_PAGES - 1, 33, 32, busy=1.0, processes=2)
    assert not pool.worth_preparing(pool.PREPARE_AFTER_PAGES, 32, 32, busy=1.0, processes=2)


class _Enough(Exception):
    """Ends a watched start loop that would go on waiting."""


async def watch_the_start(
    monkeypatch: pytest.MonkeyPatch,
    processes: int | str,
    pages: Callable[[float], int],
    busy: Callable[[float], float] = lambda t: 1.0,
    until_s: float = 2.0,
) -> list[tuple[str, float]]:
    """Run `_start_when_large` on virtual time, `pages(t)` stored and `busy(t)` of a core used at each
    moment t, with launching, starting and ending worker processes replaced by notes of when they
    happened: ("launch", t), ("start", t) or ("start unlaunched", t), ("discard", t)."""
    clock = {"wall": 0.0, "cpu": 0.0}
    said: list[tuple[str, float]] = []

    async def tick(delay_s: float) -> None:
        clock["cpu"] += delay_s * busy(clock["wall"])
        clock["wall"] += delay_s
        if clock["wall"] > until_s:
            raise _Enough

    async def counts() -> SimpleNamespace:
        return SimpleNamespace(queued=1000)

    async def exited() -> int:
        return 0

    def launched() -> pool._Worker:
        said.append(("launch", clock["wall"]))
        process = SimpleNamespace(pid=0, returncode=0, wait=exited)
        closing = SimpleNamespace(close=lambda: said.append(("discard", clock["wall"])))
        return pool._Worker(process, channel=closing)  # type: ignore[arg-type]

    async def launch() -> pool._Worker:
        return launched()

    async def start_one() -> None:
        prepared = workers._prepared.pop() if workers._prepared else None
        said.append(("start" if prepared else "start unlaunched", clock["wall"]))

    monkeypatch.setattr(pool.asyncio, "sleep", tick)
    monkeypatch.setattr(pool.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(pool.time, "process_time", lambda: clock["cpu"])
    stats = type("Stats", (), {"pages": property(lambda _: pages(clock["wall"]))})()
    engine = SimpleNamespace(stats=stats)
    cfg = CrawlConfig(concurrency=8, processes=processes)
    workers = pool.WorkerProcesses(engine, SimpleNamespace(counts=counts), cfg, [], 2)  # type: ignore[arg-type]
    monkeypatch.setattr(workers, "_launch", launch)
    monkeypatch.setattr(workers, "_start_one", start_one)
    with contextlib.suppress(_Enough):
        await workers._start_when_large()
    return said


def large_after(t_s: float) -> Callable[[float], int]:
    """Pages stored: enough to launch workers at once, enough to start them from `t_s` on."""
    return lambda t: pool.START_AFTER_PAGES if t >= t_s else pool.PREPARE_AFTER_PAGES


async def test_a_number_asked_for_starts_at_the_first_look_of_a_large_crawl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await watch_the_start(monkeypatch, 2, large_after(0.0)) == [("start unlaunched", 0.0)]


async def test_workers_are_launched_before_the_crawl_is_large_and_started_once_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """They import crawlpool while the first process crawls: started, they crawl at once."""
    said = await watch_the_start(monkeypatch, 2, large_after(0.5))
    assert said == [("launch", 0.0), ("start", 0.5)]
    assert await watch_the_start(monkeypatch, 2, lambda t: pool.PREPARE_AFTER_PAGES - 1) == []


async def test_auto_launches_a_busy_crawls_workers_and_starts_them_after_a_whole_busy_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = pool.BUSY_WINDOW_S
    said = await watch_the_start(monkeypatch, "auto", large_after(0.0))
    assert said == [("launch", pool.START_CHECK_S), ("start", window)]  # busy: known after two looks


async def test_auto_lets_its_launched_workers_go_when_a_whole_window_finds_it_not_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Busy at first, then waiting on its sites: launched, then ended, never started."""
    window = pool.BUSY_WINDOW_S
    said = await watch_the_start(
        monkeypatch, "auto", large_after(0.0), busy=lambda t: 1.0 if t < pool.START_CHECK_S else 0.0
    )
    assert said == [("launch", pool.START_CHECK_S), ("discard", window)]


async def test_auto_launches_ahead_only_once_when_its_load_comes_and_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Busy and idle by turns, half a second each, never large: launched, let go, and not launched
    again (over and over, they would take CPU from the process they were to help)."""
    window = pool.BUSY_WINDOW_S
    said = await watch_the_start(
        monkeypatch,
        "auto",
        lambda t: pool.START_AFTER_PAGES - 1,
        busy=lambda t: 1.0 if int(t / window) % 2 == 0 else 0.0,
        until_s=4 * window,
    )
    assert said == [("launch", pool.START_CHECK_S), ("discard", window + pool.START_CHECK_S)]


async def test_a_crawl_that_stays_small_ends_the_workers_it_launched(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Launched past PREPARE_AFTER_PAGES (the site holds its answers until then), never started: the
    crawl ends in one process, and so do they, reaped."""
    site = Site(pages=150, gate_after=pool.PREPARE_AFTER_PAGES + 10)
    launched: list[int] = []
    launch = pool.WorkerProcesses._launch

    async def noted(self: pool.WorkerProcesses) -> pool._Worker:
        worker = await launch(self)
        launched.append(worker.process.pid)
        site.gate.set()
        return worker

    monkeypatch.setattr(pool.WorkerProcesses, "_launch", noted)
    base = await serve(site)
    async with asyncio.timeout(60):  # without a launch the site would hold its answers for ever
        result = await crawlpool.crawl(
            [base + "/"], output=tmp_path / "out", processes=2, concurrency=8, per_host=8, robots=False
        )
    assert result.stats.pages == 150
    assert len(launched) == 1
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(launched[0], 0)


async def test_a_url_reaches_the_frontier_once_whichever_process_found_it(tmp_path: Path) -> None:
    """A worker knows only the links it found: the first process drops those it (or another worker)
    handed the frontier before, and its own pages' links skip those a worker sent."""
    config = CrawlConfig(output=tmp_path, robots=False, processes=2)
    frontier = MemoryFrontier(Politeness(config.per_host, config.delay_s))
    handed: list[list[str]] = []
    add = frontier.add

    async def recorded(requests: Sequence[Request]) -> int:
        handed.append([r.url for r in requests])
        return await add(requests)

    frontier.add = recorded  # type: ignore[method-assign]
    prepare_output(tmp_path)
    engine = Engine(
        config,
        frontier=frontier,
        fetcher=None,  # type: ignore[arg-type]
        store=PageStore(tmp_path),
        manifest=Manifest(tmp_path),
        scope=Scope([SEED]),
        on_page=lambda page: None,
    )
    workers = pool.WorkerProcesses(engine, frontier, config, [SEED], 2)
    worker = pool._Worker(SimpleNamespace(pid=0, returncode=None), channel=None)  # type: ignore[arg-type]
    a, b, c = (make_request(SEED + name, 1, SEED) for name in "abc")
    await workers._call(worker, "add", ([a, b],))
    await workers._call(worker, "add", ([b, c],))  # another worker found b too
    await engine._queue([a, c])  # and so did this process's own pages
    assert handed == [[a.url, b.url], [c.url]]


def test_processes_is_checked_before_any_request() -> None:
    assert CrawlConfig(processes="3", concurrency=8).processes == 3  # type: ignore[arg-type]  # as TOML may
    assert CrawlConfig(processes=1, frontier="redis://127.0.0.1:1/0").process_count == 1
    assert CrawlConfig(frontier="redis://127.0.0.1:1/0").process_count == 1  # auto keeps one
    assert CrawlConfig(concurrency=1).process_count == 1
    bad: object
    for bad, says in [
        (0, "processes: must be at least 1, got 0"),
        ("many", "processes: expected a number of processes or auto, got 'many'"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(says)):
            CrawlConfig(processes=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="processes: a Redis crawl grows by starting more"):
        CrawlConfig(processes=2, frontier="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="processes: --update runs in one process"):
        CrawlConfig(processes=2, update=True)
    with pytest.raises(ConfigError, match="processes: 4 processes need a concurrency of at least 4, got 2"):
        CrawlConfig(processes=4, concurrency=2)


@pytest.mark.parametrize("with_pidfd", [True, False])
def test_ending_a_worker_that_has_just_died_leaves_its_exit_to_asyncio(with_pidfd: bool) -> None:
    """The first process ends a worker whose socket closed; if the worker had just died, that must not
    reap it: asyncio's child watcher would then find no child and report exit code 255 instead of the
    signal that killed it (`process.kill()` did so: Popen polls, and reaps, before it signals)."""
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], os.environ)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # it has exited, and is not reaped
    process = type("Exited", (), {"pid": pid, "returncode": None})()  # as asyncio sees it until reaped
    worker = pool._Worker(process, channel=None, pidfd=os.pidfd_open(pid) if with_pidfd else None)  # type: ignore[arg-type]
    try:
        worker.kill()
        still_ours = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        assert still_ours is not None and still_ours.si_pid == pid, "kill() reaped the worker"
    finally:
        worker.close_pidfd()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # its own exit, for whoever waits for it
    worker.kill()  # once reaped, ending it again is a no-op, not an error or a stray signal
