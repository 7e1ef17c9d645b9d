"""`--processes`: worker processes share one crawl with the first process, which keeps its frontier and
manifest. Crawls run as subprocesses against a generated site on 127.0.0.1; what the crawl prints at
-v (`worker process P is crawling`) and the site's own request count say when to act, so no test
sleeps to wait for a moment."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import crawlpool
from crawlpool.config import CrawlConfig
from crawlpool.errors import ConfigError
from crawlpool.multiproc import pool
from tests.generated_site import SRC, Site, assert_complete_and_exactly_once, finish
from tests.test_warc import assert_archive_matches_manifest, warcio_check

pytestmark = pytest.mark.slow  # wall-clock crawls with real processes

PAGES = 900  # workers start after 200 stored pages: the crawl must outlast their start-up
JOINED = re.compile(r"worker process (\d+) is crawling")
COMMITTED = re.compile(r"worker processes committed (\d+) of the (\d+) records")


async def start(base: str, output: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawlpool", "crawl", base + "/", "-o", str(output), "--concurrency", "8",
        "--per-host", "4", "--retries", "0", "--processes", "2", "-v", "--progress-interval", "3600",
        *extra, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip


async def read_until_a_worker_crawls(proc: asyncio.subprocess.Process, seen: list[str]) -> int:
    """Read the crawl's stderr until a worker says it is crawling; its pid."""
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), timeout=60)).decode()
        assert line, "the crawl ended before a worker crawled:\n" + "".join(seen)
        seen.append(line)
        if found := JOINED.search(line):
            return int(found.group(1))


async def rest_of(proc: asyncio.subprocess.Process, seen: list[str]) -> tuple[int, str]:
    code, err = await finish(proc)
    return code, "".join(seen) + err


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


def act_after(site: Site, armed: list[int], action: Callable[[], None], more_requests: int = 40) -> None:
    """Once `armed` holds the request count at which a worker joined, act `more_requests` later."""
    done: list[bool] = []

    def on_request(count: int) -> None:
        if armed and not done and count >= armed[0] + more_requests:
            done.append(True)
            action()

    site.on_request = on_request


async def test_workers_crawl_every_page_once_within_the_per_host_limit(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = Site(pages=PAGES, delay_s=0.005)
    base = await serve(site)
    output = tmp_path / "out"
    proc = await start(base, output)
    code, err = await finish(proc)
    assert code == 0, err
    assert len(set(JOINED.findall(err))) == 2, err
    committed = COMMITTED.search(err)
    assert committed is not None, err
    assert int(committed.group(1)) > 0 and int(committed.group(2)) == PAGES
    assert_complete_and_exactly_once(output, site.urls(base))
    assert site.max_in_flight <= 4  # --per-host 4, whichever process sent them
    assert f"pages stored    {PAGES}" in err


async def test_a_killed_worker_loses_nothing_and_another_takes_its_place(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = Site(pages=PAGES, delay_s=0.005)
    base = await serve(site)
    output = tmp_path / "out"
    armed: list[int] = []
    victim: list[int] = []
    act_after(site, armed, lambda: os.kill(victim[0], signal.SIGKILL))
    proc = await start(base, output)
    seen: list[str] = []
    victim.append(await read_until_a_worker_crawls(proc, seen))
    armed.append(site.requests)
    code, err = await rest_of(proc, seen)
    assert code == 0, err
    assert f"worker process {victim[0]} was killed by signal 9" in err
    assert "starting another" in err
    assert len(set(JOINED.findall(err))) == 3, err  # two, then the one that took the killed one's place
    assert_complete_and_exactly_once(output, site.urls(base))


@pytest.mark.parametrize("kill", [False, True], ids=["all-end-well", "a-worker-killed"])
async def test_warc_files_of_every_process_hold_each_committed_exchange_once(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path, kill: bool
) -> None:
    site = Site(pages=PAGES, delay_s=0.005)
    base = await serve(site)
    output = tmp_path / "out"
    armed: list[int] = []
    victim: list[int] = []
    if kill:
        act_after(site, armed, lambda: os.kill(victim[0], signal.SIGKILL))
    proc = await start(base, output, "--warc", "--warc-max-size", "300k")
    seen: list[str] = []
    victim.append(await read_until_a_worker_crawls(proc, seen))
    armed.append(site.requests)
    code, err = await rest_of(proc, seen)
    assert code == 0, err
    assert ("was killed by signal 9" in err) == kill
    assert_complete_and_exactly_once(output, site.urls(base))
    warcio_check(output)
    assert_archive_matches_manifest(output)  # each committed exchange once, over every process's files
    names = [path.name for path in (output / "warc").glob("*.warc.gz")]
    assert len(names) == len(set(names)) >= 3  # the first process's and each worker's, rotated
    assert all((output / "warc" / name.replace(".warc.gz", ".cdxj")).exists() for name in names)


async def test_when_the_first_process_is_killed_its_workers_end_and_resume_completes(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = Site(pages=PAGES, delay_s=0.005)
    base = await serve(site)
    output = tmp_path / "out"
    armed: list[int] = []
    first: list[asyncio.subprocess.Process] = []
    act_after(site, armed, lambda: os.kill(first[0].pid, signal.SIGKILL))
    first.append(await start(base, output))
    seen: list[str] = []
    worker = await read_until_a_worker_crawls(first[0], seen)
    armed.append(site.requests)
    code, err = await rest_of(first[0], seen)
    assert code == -signal.SIGKILL, err
    await gone(worker)  # its socket closed: it ended without being told
    site.on_request = lambda count: None
    code, err = await finish(await start(base, output, "--resume"))
    assert code == 0, err
    assert_complete_and_exactly_once(output, site.urls(base))


async def test_ctrl_c_stops_every_process_gracefully_and_resume_completes(
    serve: Callable[[Site], asyncio.Future[str]], tmp_path: Path
) -> None:
    site = Site(pages=PAGES, delay_s=0.005)
    base = await serve(site)
    output = tmp_path / "out"
    armed: list[int] = []
    first: list[asyncio.subprocess.Process] = []
    act_after(site, armed, lambda: os.kill(first[0].pid, signal.SIGINT))
    first.append(await start(base, output))
    seen: list[str] = []
    workers = [await read_until_a_worker_crawls(first[0], seen)]
    armed.append(site.requests)
    code, err = await rest_of(first[0], seen)
    assert code == 130, err
    assert "Traceback" not in err
    assert "crawl stopped before it was done" in err
    for pid in workers + [int(p) for p in JOINED.findall(err)]:
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
        [base + "/"], output=tmp_path / "out", processes=2, max_pages=300, concurrency=8, per_host=4
    )
    assert result.stats.pages == 300
    records = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert len(records) == 300
    assert result.stats.outcome == "max_pages"


def test_auto_starts_workers_only_for_a_large_crawl_this_process_holds_back() -> None:
    large = (pool.START_AFTER_PAGES, 33, 32)
    assert pool.worth_starting(*large, busy=0.9, processes="auto")
    assert not pool.worth_starting(*large, busy=0.2, processes="auto")  # the sites are the limit
    assert pool.worth_starting(*large, busy=0.2, processes=2)  # asked for: started on size alone
    assert not pool.worth_starting(pool.START_AFTER_PAGES - 1, 33, 32, busy=1.0, processes=2)
    assert not pool.worth_starting(pool.START_AFTER_PAGES, 32, 32, busy=1.0, processes=2)


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
