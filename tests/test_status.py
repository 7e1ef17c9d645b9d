"""Where a crawl's state lives, recorded in its output directory, and what every backend shares:
`crawlpool status OUTPUT` finds a sqlite:///PATH or Redis crawl by itself, and a Redis crawl gets the
identity check on rejoin and the manifest repair on resume that a SQLite crawl gets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from crawlpool.frontier import read_location, write_location
from tests.redis_server import drop_crawl, new_crawl_id, redis_url
from tests.test_resume import Site, _run_cli, finish, serve, start_crawl

__all__ = ["serve"]  # the fixture, shared with test_resume

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
    assert out.splitlines() == [
        f"crawl in {output}: no frontier state (a memory-frontier crawl): from the manifest",
        "  pages stored   3",
        "  URLs done      3",
        "  failed         0",
    ]


@pytest.mark.redis
async def test_status_finds_a_redis_crawl_from_output_alone(serve: Serve, tmp_path: Path) -> None:
    url, crawl_id = redis_url(), new_crawl_id()
    site = Site(pages=10)
    base = await serve(site)
    output = tmp_path / "w1"
    try:
        proc = await start_crawl(base, output, "--frontier", url, "--crawl-id", crawl_id)
        assert (await finish(proc))[0] == 0
        code, out, err = await _run_cli("status", str(output))
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"crawl in {output}: finished"
        assert f"  crawl id       {crawl_id}" in lines
        assert "  URLs done      10 (of 10 discovered)" in lines
        assert "  politeness     per_host 4, delay 0 s" in lines
        code, out, err = await _run_cli("status", "--frontier", url, "--crawl-id", crawl_id)
        assert code == 0 and out.splitlines()[0] == f"crawl {crawl_id}: finished", out + err
    finally:
        await drop_crawl(url, crawl_id)


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
