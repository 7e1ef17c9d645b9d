"""Where a crawl's state lives, recorded in its output directory, and what every backend shares:
`crawlpool status OUTPUT` finds a sqlite:///PATH or Redis crawl by itself, and a Redis crawl gets the
identity check on rejoin and the manifest repair on resume that a SQLite crawl gets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crawlpool.frontier import read_location, write_location
from tests.generated_site import Site, finish, start_crawl
from tests.redis_server import drop_crawl, new_crawl_id, redis_url
from tests.test_resume import _run_cli

Serve = Callable[[Site], asyncio.Future[str]]


def manifest_urls(output: Path) -> list[str]:
    return [json.loads(line)["url"] for line in (output / "manifest.jsonl").read_text().splitlines()]


def test_the_location_file_never_holds_a_password(tmp_path: Path) -> None:
    write_location(tmp_path, "rediss://user:s3cret@redis.example:6380/2", "crawl-x", "w:1")
    text = (tmp_path / ".crawlpool" / "frontier.json").read_text()
    assert "s3cret" not in text
    location = read_location(tmp_path)
    assert location is not None
    assert location.frontier == "rediss://user:***@redis.example:6380/2"
    assert (location.crawl_id, location.worker_id) == ("crawl-x", "w:1")
    write_location(tmp_path, "redis://:s3cret@127.0.0.1:6379/0", "crawl-x", "w:1")
    assert "s3cret" not in (tmp_path / ".crawlpool" / "frontier.json").read_text()


async def test_status_finds_a_sqlite_path_crawl_from_output_alone(serve: Serve, tmp_path: Path) -> None:
    site = Site(pages=10)
    base = await serve(site)
    output, state = tmp_path / "out", tmp_path / "elsewhere" / "state.db"
    assert (await finish(await start_crawl(base, output, "--frontier", f"sqlite://{state}")))[0] == 0
    assert state.exists() and not (output / ".crawlpool" / "frontier.db").exists()
    code, out, err = await _run_cli("status", str(output))
    assert code == 0, err
    assert out.splitlines()[0] == f"crawl in {output}: finished"
    assert "  pages stored   10" in out.splitlines()
    assert "  URLs done      10 (of 10 discovered)" in out.splitlines()
    code, out, err = await _run_cli("status", str(output), "--frontier", "sqlite")  # explicit wins
    assert code == 0, err
    missing = output / ".crawlpool" / "frontier.db"
    assert (
        out.splitlines()[0]
        == f"crawl in {output}: no frontier state ({missing} not found): from the manifest"
    )


async def test_status_of_a_memory_crawl_counts_its_manifest(serve: Serve, tmp_path: Path) -> None:
    base = await serve(Site(pages=3))
    output = tmp_path / "out"
    assert (await finish(await start_crawl(base, output, "--frontier", "memory")))[0] == 0
    code, out, err = await _run_cli("status", str(output))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:4] == [
        f"crawl in {output}: no frontier state (a memory-frontier crawl): from the manifest",
        "  pages stored   3",
        "  URLs done      3",
        "  failed         0",
    ]
    assert lines[4:] == [f"  updated        {_utc(output / 'manifest.jsonl')}"]  # the manifest's last write


async def test_status_of_a_crawl_that_recorded_no_frontier_says_so(serve: Serve, tmp_path: Path) -> None:
    """An OUTPUT from before crawlpool wrote frontier.json, whose state is elsewhere: not a guess."""
    base = await serve(Site(pages=3))
    output = tmp_path / "out"
    state = tmp_path / "state.db"
    assert (await finish(await start_crawl(base, output, "--frontier", f"sqlite://{state}")))[0] == 0
    (output / ".crawlpool" / "frontier.json").unlink()
    code, out, err = await _run_cli("status", str(output))
    assert code == 0, err
    assert out.splitlines()[0] == (
        f"crawl in {output}: no frontier state found ({output / '.crawlpool' / 'frontier.json'} and "
        f"{output / '.crawlpool' / 'frontier.db'} missing; give --frontier if it lives elsewhere): "
        "from the manifest"
    )
    code, out, err = await _run_cli("status", str(output), "--frontier", f"sqlite://{state}")
    assert code == 0 and out.splitlines()[0] == f"crawl in {output}: finished", out + err


async def test_status_after_kill_9_says_when_the_crawl_last_wrote(serve: Serve, tmp_path: Path) -> None:
    site = Site(pages=50)
    base = await serve(site)
    output = tmp_path / "out"
    proc: asyncio.subprocess.Process | None = None

    def kill_at_tenth(count: int) -> None:
        if count == 10 and proc is not None:
            os.kill(proc.pid, signal.SIGKILL)

    site.on_request = kill_at_tenth
    proc = await start_crawl(base, output)
    assert (await finish(proc))[0] == -signal.SIGKILL
    code, out, err = await _run_cli("status", str(output))
    assert code == 0, err
    lines = out.splitlines()
    # killed: it never said how it ended, so status says what is left
    assert re.fullmatch(
        rf"crawl in {re.escape(str(output))}: stopped with \d+ URLs queued; continue it with --resume",
        lines[0],
    )
    state = output / ".crawlpool" / "frontier.db"
    written = max(_utc(path) for path in (state, state.with_name("frontier.db-wal")) if path.exists())
    assert f"  updated        {written}" in lines, out  # the run never reached its own `updated`
    started = next(line.split()[-1] for line in lines if line.startswith("  started"))
    assert started <= written


def _utc(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))


@pytest.mark.redis
async def test_status_finds_a_redis_crawl_from_output_alone(serve: Serve, tmp_path: Path) -> None:
    url, crawl_id = redis_url(), new_crawl_id()
    site = Site(pages=10)
    base = await serve(site)
    output = tmp_path / "w1"
    try:
        proc = await start_crawl(base, output, "--frontier", url, "--crawl-id", crawl_id)
        assert (await finish(proc))[0] == 0
        before = await crawl_keys(url, crawl_id)
        code, out, err = await _run_cli("status", str(output))
        assert code == 0, err
        assert err == "", "status said something about the crawl's politeness"  # per_host 4, not 2
        lines = out.splitlines()
        assert lines[0] == f"crawl in {output}: finished"
        assert f"  crawl id       {crawl_id}" in lines
        assert "  URLs done      10 (of 10 discovered)" in lines
        assert "  politeness     per_host 4, delay 0 s" in lines
        code, out, err = await _run_cli("status", "--frontier", url, "--crawl-id", crawl_id)
        assert code == 0 and out.splitlines()[0] == f"crawl {crawl_id}: finished", out + err
        assert err == ""
        assert await crawl_keys(url, crawl_id) == before, "status changed the crawl in Redis"
    finally:
        await drop_crawl(url, crawl_id)


@pytest.mark.redis
async def test_redis_status_says_no_live_worker_once_its_heartbeat_is_older_than_its_lease(
    serve: Serve, tmp_path: Path
) -> None:
    url, crawl_id = redis_url(), new_crawl_id()
    site = Site(pages=50)
    base = await serve(site)
    output = tmp_path / "w1"
    proc: asyncio.subprocess.Process | None = None

    def kill_at_tenth(count: int) -> None:
        if count == 10 and proc is not None:
            os.kill(proc.pid, signal.SIGKILL)

    site.on_request = kill_at_tenth
    try:
        proc = await start_crawl(base, output, "--frontier", url, "--crawl-id", crawl_id, "--lease", "5")
        assert (await finish(proc))[0] == -signal.SIGKILL
        code, out, err = await _run_cli("status", str(output))
        assert code == 0, err
        assert out.splitlines()[0] == f"crawl in {output}: running (1 live worker)"  # a fresh heartbeat
        assert "  updated        " in out  # from its last record: the killed worker never set it
        # Time passes: the killed worker's last heartbeat is now older than its 5 s lease.
        worker = json.loads((output / ".crawlpool" / "frontier.json").read_text())["worker_id"]
        await age_heartbeat(url, crawl_id, worker, seconds=6)
        code, out, err = await _run_cli("status", str(output))
        assert code == 0, err
        lines = out.splitlines()
        hint = "start one with the same --frontier and --crawl-id to continue"
        assert lines[0] == f"crawl in {output}: no live worker; {hint}"
        assert not any("running" in line or "in progress" in line for line in lines), out
        stale = [line for line in lines if line.startswith(f"  worker {worker}:")]
        assert all(line.endswith("(stale: its slots come back after its lease)") for line in stale), out
    finally:
        await drop_crawl(url, crawl_id)


@pytest.mark.redis
async def test_redis_status_without_a_crawl_id_lists_the_crawls_there(serve: Serve, tmp_path: Path) -> None:
    url, done_id, stopped_id = redis_url(), new_crawl_id(), new_crawl_id()
    decoy = f"crawlpool:{{{new_crawl_id()}}}:meta"  # the pattern's shape, but no crawl's hash
    site = Site(pages=10)
    base = await serve(site)
    client = _client(url)
    try:
        await client.set(decoy, "not a crawl")
        shared = ("--frontier", url, "--crawl-id")
        assert (await finish(await start_crawl(base, tmp_path / "a", *shared, done_id)))[0] == 0
        proc = await start_crawl(base, tmp_path / "b", *shared, stopped_id, "--max-pages", "3")
        assert (await finish(proc))[0] == 0  # a clean stop: its worker is gone at once
        code, out, err = await _run_cli("status", "--frontier", url)
        assert code == 0 and err == "", err
        lines = out.splitlines()
        assert re.fullmatch(rf"\d+ crawls? at {re.escape(url)}:", lines[0]), lines[0]
        mine = {line.split()[0]: line.split(None, 1)[1] for line in lines[1:-1]}
        assert mine[done_id] == "finished: 10 URLs done (of 10 discovered), 0 queued, 0 failed"
        assert re.fullmatch(r"no live worker: 3 URLs done \(of \d+ discovered\), \d+ queued, 0 failed",
                            mine[stopped_id]), mine[stopped_id]  # fmt: skip
        assert decoy.split("{")[1].split("}")[0] not in mine
        assert lines[-1] == "one crawl in full: crawlpool status --frontier URL --crawl-id NAME"
    finally:
        await client.delete(decoy)
        await client.aclose()
        await drop_crawl(url, done_id)
        await drop_crawl(url, stopped_id)


@pytest.mark.redis
async def test_joining_a_finished_redis_crawl_says_so_in_one_line_and_sends_nothing(
    serve: Serve, tmp_path: Path
) -> None:
    url, crawl_id = redis_url(), new_crawl_id()
    site = Site(pages=10)
    base = await serve(site)
    shared = ("--frontier", url, "--crawl-id", crawl_id)
    try:
        assert (await finish(await start_crawl(base, tmp_path / "w1", *shared)))[0] == 0
        requests = site.requests
        code, _, err = await _run_cli("crawl", base + "/", "-o", str(tmp_path / "w2"), *shared)
        assert code == 0, err
        said = f"crawl {crawl_id} at {url} is already finished: 10 URLs done (0 failed); nothing to do"
        assert err == f"crawlpool: {said}\n"
        code, _, err = await _run_cli("crawl", base + "/", "-o", str(tmp_path / "w3"), *shared, "-q")
        assert (code, err) == (0, "")
        assert site.requests == requests, "a worker of a finished crawl sent a request"
    finally:
        await drop_crawl(url, crawl_id)


def _client(url: str) -> Any:
    import redis.asyncio as aioredis  # only where a Redis test runs: the package is optional

    return aioredis.from_url(url)


async def crawl_keys(url: str, crawl_id: str) -> dict[bytes, bytes | None]:
    """Every key of one crawl with its serialized value (DUMP): equal only if nothing was written."""
    client = _client(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"crawlpool:{{{crawl_id}}}:*")]
        return {key: await client.dump(key) for key in keys}
    finally:
        await client.aclose()


async def age_heartbeat(url: str, crawl_id: str, worker: str, *, seconds: float) -> None:
    """Move a worker's last heartbeat `seconds` into the past, as if that much time had passed."""
    client = _client(url)
    try:
        now_s, now_us = await client.time()
        await client.zadd(
            f"crawlpool:{{{crawl_id}}}:workers", {worker: now_s * 1000 + now_us // 1000 - seconds * 1000}
        )
    finally:
        await client.aclose()


@pytest.mark.redis
@pytest.mark.parametrize(
    ("change", "named"),
    [(["/other-seed"], "other seeds"), (["/", "--scope", "domain"], "other scope"),
     (["/", "--exclude", "/p/"], "other exclude")],
    ids=["seeds", "scope", "exclude"],
)  # fmt: skip
async def test_a_redis_worker_with_another_crawl_definition_is_refused(
    serve: Serve, tmp_path: Path, change: list[str], named: str
) -> None:
    url, crawl_id = redis_url(), new_crawl_id()
    site = Site(pages=5)
    base = await serve(site)
    try:
        proc = await start_crawl(base, tmp_path / "w1", "--frontier", url, "--crawl-id", crawl_id)
        assert (await finish(proc))[0] == 0
        requests = site.requests
        seed, *flags = change
        code, _, err = await _run_cli(
            "crawl", base + seed, "-o", str(tmp_path / "w2"), "--frontier", url, "--crawl-id", crawl_id,
            "-q", *flags,
        )  # fmt: skip
        assert code == 2, err
        assert len(err.splitlines()) == 1, err
        assert f"join: crawl {crawl_id} at {url} was started with {named}" in err
        assert site.requests == requests, "the refused worker sent a request"
    finally:
        await drop_crawl(url, crawl_id)


@pytest.mark.redis
async def test_a_redis_worker_resumed_rebuilds_its_manifest_from_exactly_its_records(
    serve: Serve, tmp_path: Path
) -> None:
    url, crawl_id = redis_url(), new_crawl_id()
    site = Site(pages=20)
    base = await serve(site)
    w1, w2 = tmp_path / "w1", tmp_path / "w2"
    shared = ("--frontier", url, "--crawl-id", crawl_id)
    try:
        # w1 stores 5 pages and stops; w2 joins and crawls the rest.
        assert (await finish(await start_crawl(base, w1, *shared, "--max-pages", "5")))[0] == 0
        assert (await finish(await start_crawl(base, w2, *shared)))[0] == 0
        mine, theirs = manifest_urls(w1), manifest_urls(w2)
        assert len(mine) == 5 and not set(mine) & set(theirs)
        assert set(mine) | set(theirs) == site.urls(base)
        # A crash leaves w1's manifest wrong: a line lost, one twice, a last line cut short.
        lines = (w1 / "manifest.jsonl").read_text().splitlines()
        (w1 / "manifest.jsonl").write_text("\n".join([lines[0], *lines[:3], lines[4][:20]]))
        code, _, err = await _run_cli("crawl", base + "/", "-o", str(w1), *shared, "--resume", "-q")
        assert code == 0, err
        assert sorted(manifest_urls(w1)) == sorted(mine), "not rebuilt from exactly w1's records"
        assert manifest_urls(w2) == theirs
    finally:
        await drop_crawl(url, crawl_id)


@pytest.mark.redis
async def test_resume_refuses_an_output_of_another_redis_crawl(serve: Serve, tmp_path: Path) -> None:
    url, crawl_id = redis_url(), new_crawl_id()
    site = Site(pages=5)
    base = await serve(site)
    output = tmp_path / "w1"
    try:
        proc = await start_crawl(base, output, "--frontier", url, "--crawl-id", crawl_id)
        assert (await finish(proc))[0] == 0
        code, _, err = await _run_cli("crawl", base + "/", "-o", str(output), "--frontier", url, "--resume")
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"is crawl {crawl_id} at {url}" in err
    finally:
        await drop_crawl(url, crawl_id)
