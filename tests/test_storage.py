"""A page write that fails (disk full, no permission) ends the crawl in one line, exit 1, resumable."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crawlpool.errors import StorageError
from crawlpool.paths import page_path
from crawlpool.records import Page
from crawlpool.store import (
    INLINE_WRITE_MAX,
    MANIFEST_NAME,
    Manifest,
    PageStore,
    prepare_output,
    rewrite_manifest,
)

BIG = 200 * 1024  # more than the 64 KiB tmpfs holds


@dataclass
class Cramped:
    """An output directory where writing OUTPUT/pages/<host>/sub/ fails once."""

    output: Path
    reason: str  # the strerror the write fails with
    make_room: Callable[[], None]  # afterwards, writing works again


@pytest.fixture
def cramped(tmp_path: Path) -> Iterator[Cramped]:
    """As root, chmod stops nothing: the output is a 64 KiB tmpfs that a big page fills (ENOSPC).
    Otherwise `sub/` is read-only (EACCES) until `make_room`."""
    output = tmp_path / "out"
    output.mkdir()
    if os.geteuid() != 0:
        yield Cramped(output, "Permission denied", lambda: None)
        return
    if shutil.which("mount") is None:
        pytest.skip("running as root, where chmod cannot refuse a write, and there is no mount command")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(output)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"running as root, where chmod cannot refuse a write, and a tmpfs cannot be mounted: "
                    f"{mounted.stderr.strip()}")  # fmt: skip
    try:
        yield Cramped(output, "No space left on device", lambda: None)  # the second answer is small
    finally:
        subprocess.run(["umount", str(output)], check=True)


def _site() -> web.Application:
    answered: dict[str, int] = {}

    async def handle(request: web.Request) -> web.Response:
        count = answered[request.path] = answered.get(request.path, 0) + 1
        if sum(answered.values()) > 10:  # bounded: two crawls need four requests
            return web.Response(status=404)
        if request.path == "/":
            return web.Response(text='<a href="/sub/big">big</a>', content_type="text/html")
        if request.path == "/sub/big":  # too big for the tmpfs the first time only
            return web.Response(body=b"b" * (BIG if count == 1 else 10), content_type="text/plain")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def _crawlpool(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crawlpool",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_failed_page_write_stops_the_crawl_in_one_line_and_resume_finishes_it(
    aiohttp_server: Callable[..., Awaitable[TestServer]], cramped: Cramped, tmp_path: Path
) -> None:
    server = await aiohttp_server(_site(), host="127.0.0.1")
    seed = f"http://127.0.0.1:{server.port}/"
    big_path = page_path(f"{seed}sub/big")
    if os.geteuid() != 0:
        read_only = (cramped.output / big_path).parent
        read_only.mkdir(parents=True)
        read_only.chmod(0o555)
        cramped.make_room = lambda: read_only.chmod(0o755)
    args = [seed, "-o", str(cramped.output), "--frontier", f"sqlite:///{tmp_path / 'state.db'}",
            "--no-robots", "--concurrency", "1", "--parse-workers", "0"]  # fmt: skip

    code, stderr = await _crawlpool("crawl", *args)

    assert code == 1, stderr
    assert stderr.splitlines() == [
        f"crawlpool: stopped: storage: cannot write {cramped.output / big_path}: {cramped.reason}"
    ]
    records = [json.loads(line) for line in (cramped.output / "manifest.jsonl").read_text().splitlines()]
    assert [r["url"] for r in records] == [seed], "the committed page is kept"
    assert not list((cramped.output / ".crawlpool" / "tmp").glob("*.part")), "no half-written temp file"

    cramped.make_room()
    code, stderr = await _crawlpool("crawl", *args, "--resume")

    assert code == 0, stderr
    records = [json.loads(line) for line in (cramped.output / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["url"] for r in records) == [seed, f"{seed}sub/big"]
    assert all(r["error"] is None for r in records)
    assert (cramped.output / big_path).read_bytes() == b"b" * 10


@pytest.mark.parametrize(
    "size", [0, INLINE_WRITE_MAX, INLINE_WRITE_MAX + 1], ids=["empty", "inline", "thread"]
)
async def test_page_writes_small_and_large_store_the_body_or_fail_naming_the_path(
    tmp_path: Path, size: int
) -> None:
    # Small bodies are written on the event loop, big ones in a thread: both behave alike.
    prepare_output(tmp_path)
    store = PageStore(tmp_path)
    body = os.urandom(size)
    sha = await store.write("pages/a/b.html", body)
    assert (tmp_path / "pages/a/b.html").read_bytes() == body
    assert sha == hashlib.sha256(body).hexdigest()
    (tmp_path / "pages/file").write_bytes(b"")  # a file where a directory should be
    with pytest.raises(StorageError, match=f"^storage: cannot write {tmp_path / 'pages/file/x.html'}: "):
        await store.write("pages/file/x.html", body)
    (tmp_path / "pages/dir.html").mkdir()  # the temp file is written, then cannot take its place
    with pytest.raises(StorageError, match=f"^storage: cannot write {tmp_path / 'pages/dir.html'}: "):
        await store.write("pages/dir.html", body)
    assert not list((tmp_path / ".crawlpool" / "tmp").glob("*.part"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, which fails every write")
async def test_a_failed_manifest_append_is_a_storage_error_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).symlink_to("/dev/full")
    page = Page("http://127.0.0.1/", "http://127.0.0.1/", 200, None, 0, None, None, 0, None,
                "2026-01-01T00:00:00.000Z", 1, None, 0)  # fmt: skip
    async with Manifest(tmp_path) as manifest:
        with pytest.raises(StorageError) as raised:
            manifest.append(page)
    assert str(raised.value) == (
        f"storage: cannot append to {tmp_path / MANIFEST_NAME}: No space left on device"
    )


async def test_a_manifest_that_cannot_be_opened_is_a_storage_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(StorageError, match=r"^storage: cannot open .*gone/manifest.jsonl: No such file"):
        async with Manifest(missing):
            pass


async def test_a_manifest_that_cannot_be_rewritten_on_resume_is_a_storage_error(tmp_path: Path) -> None:
    async def no_pages() -> AsyncIterator[Page]:
        return
        yield

    # No .crawlpool/tmp to write the new manifest in: the rewrite fails as storage, naming the manifest.
    with pytest.raises(StorageError, match=r"^storage: cannot rewrite .*manifest.jsonl: No such file"):
        await rewrite_manifest(tmp_path, no_pages())
