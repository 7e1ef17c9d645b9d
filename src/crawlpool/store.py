"""The output directory: page bodies under `pages/`, and `manifest.jsonl`.

A body is written to a temp file under `.crawlpool/tmp/` and renamed into place, so a page file is either
absent or whole. Temp files live outside `pages/` so they can never be mistaken for, or collide with, a
page. The manifest line for a URL is appended only after its body is on disk (and, with a frontier, after
the frontier committed the record), so every `path` a manifest line names exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

import aiofiles
import aiofiles.os

from crawlpool.errors import ConfigError, StorageError
from crawlpool.records import Page

MANIFEST_NAME = "manifest.jsonl"
STATE_DIR = ".crawlpool"


def prepare_output(
    output: Path, *, resume: bool = False, state_file: Path | None = None, resumable: bool = True
) -> None:
    """Create OUTPUT and check it is writable, before any request is sent.

    Crawls are never silently mixed: raises ConfigError when OUTPUT already holds a crawl (a manifest,
    or the frontier's state file) and `resume` is false, when `resume` is true but `state_file` (given:
    a SQLite frontier) does not exist, and when OUTPUT cannot be created or written."""
    manifest = output / MANIFEST_NAME
    has_state = state_file is not None and state_file.exists()
    if not resume and (manifest.exists() or has_state):
        if not resumable:  # a memory frontier keeps nothing to resume: do not send the user there
            raise ConfigError(
                f"output: {output} already holds a crawl; choose another directory or remove it "
                "(a memory-frontier crawl cannot be resumed)"
            )
        raise ConfigError(
            f"output: {output} already holds a crawl; "
            "add --resume to continue it, or choose another directory"
        )
    if resume and state_file is not None and not has_state:
        raise ConfigError(f"resume: there is no crawl to resume in {output} ({state_file} not found)")
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / STATE_DIR / "tmp").mkdir(parents=True, exist_ok=True)
        probe = output / STATE_DIR / "tmp" / f"write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"output: cannot write to {output}: {reason}") from None


def clear_temp_files(output: Path, pid: int | None = None) -> int:
    """Remove temp files a killed process left behind (all, or those of process `pid`, which has been
    reaped); call only while holding the crawl's state."""
    removed = 0
    for leftover in (output / STATE_DIR / "tmp").glob("*.part" if pid is None else f"{pid}-*.part"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed


async def rewrite_manifest(output: Path, pages: AsyncIterator[Page]) -> int:
    """Replace OUTPUT/manifest.jsonl by `pages` (the frontier's committed records), atomically.

    This is how resume repairs the manifest after a kill: a line cut in half, or records committed
    after the last line was written, are made right by rewriting it from the source of truth."""
    tmp = output / STATE_DIR / "tmp" / "manifest.jsonl.part"
    count = 0
    try:
        async with aiofiles.open(tmp, "w", encoding="utf-8") as fh:
            batch: list[str] = []
            async for page in pages:
                batch.append(page.to_json())
                count += 1
                if len(batch) >= 1000:
                    await fh.write("\n".join(batch) + "\n")
                    batch.clear()
            if batch:
                await fh.write("\n".join(batch) + "\n")
        await aiofiles.os.replace(tmp, output / MANIFEST_NAME)
    except OSError as exc:
        raise _storage_error("rewrite", output / MANIFEST_NAME, exc) from None
    return count


async def with_manifest(output: Path, pages: AsyncIterator[Page]) -> AsyncIterator[Page]:
    """OUTPUT's manifest merged with `pages`, the records a frontier still holds for it when it keeps
    only those its worker has not confirmed (the Redis frontier trims the rest): every whole line of
    the manifest, a record found in `pages` once, then those of `pages` the manifest lacks. Only
    `pages` is held in memory."""
    held = {page.url: page async for page in pages}
    written: set[str] = set()
    try:
        fh = (output / MANIFEST_NAME).open(encoding="utf-8")
    except FileNotFoundError:
        fh = None
    except OSError as exc:
        raise _storage_error("read", output / MANIFEST_NAME, exc) from None
    if fh is not None:
        with fh:
            for line in fh:
                try:
                    page = Page.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a line cut short by a kill: its record is in `pages`
                if page.url in held:
                    if page.url in written:
                        continue
                    written.add(page.url)
                yield page
    for url, page in held.items():
        if url not in written:
            yield page


def _write_file(tmp: str, target: str, body: bytes, make_dir: bool) -> None:
    # os.open and os.write, not Path.open: a buffered file object and pathlib's steps cost a third of
    # this function's CPU for a 30 KB page on tmpfs (37 us against 27).
    try:
        if make_dir:
            os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # a half-written temp file only takes space a full disk lacks
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _storage_error(action: str, path: Path | str, exc: OSError) -> StorageError:
    return StorageError(f"storage: cannot {action} {path}: {exc.strerror or type(exc).__name__}")


_write_atomically = aiofiles.os.wrap(_write_file)

#: Bodies up to this size are written on the event loop. A hop to aiofiles' thread costs more CPU than
#: writing a small body into the page cache (measured with 30 KB pages: 75-95 us a page through the
#: thread, 32 us inline on tmpfs; 520-600 against 380-440 on ext4); bigger bodies still go to the thread,
#: so a slow disk stalls the loop for a small write at most.
INLINE_WRITE_MAX = 64 * 1024


class PageStore:
    """Writes page bodies below `OUTPUT/pages/` atomically."""

    def __init__(self, output: Path) -> None:
        self._output = output
        # Paths as strings: joining them costs less than pathlib's steps, once per page.
        self._root = str(output)
        self._tmp_prefix = os.path.join(output, STATE_DIR, "tmp", f"{os.getpid()}-")
        self._counter = itertools.count()
        self._made_dirs: set[str] = set()

    async def write(self, relpath: str, body: bytes) -> str:
        """Store `body` at OUTPUT/`relpath`; return its sha256 (hex). Raises StorageError."""
        target = os.path.join(self._root, relpath)
        parent = os.path.dirname(target)
        make_dir = parent not in self._made_dirs
        tmp = f"{self._tmp_prefix}{next(self._counter)}.part"
        # At most one trip to aiofiles' thread pool per page, not one per open/write/close/rename.
        try:
            if len(body) <= INLINE_WRITE_MAX:
                _write_file(tmp, target, body, make_dir)
            else:
                await _write_atomically(tmp, target, body, make_dir)
        except OSError as exc:
            raise _storage_error("write", target, exc) from exc
        self._made_dirs.add(parent)
        return hashlib.sha256(body).hexdigest()

    async def read(self, relpath: str) -> bytes | None:
        """The body stored at OUTPUT/`relpath`, or None when it is gone or unreadable (a 304's page,
        read again for its links: a missing file only means no links)."""
        try:
            async with aiofiles.open(self._output / relpath, "rb") as fh:
                return await fh.read()
        except OSError:
            return None


class Manifest:
    """Appends one JSON line per record to `OUTPUT/manifest.jsonl`.

    `append` writes synchronously, straight after the frontier committed the record: a line is a few
    hundred bytes into the OS page cache, cheaper than a hop to aiofiles' thread, and with no await
    between the commit and the write, a process killed in between is as unlikely as it can be. (With
    the SQLite frontier, resume rewrites the manifest from the committed records anyway.)"""

    def __init__(self, output: Path) -> None:
        self.path = output / MANIFEST_NAME
        self._fd: int | None = None
        self._failed = False  # an append failed: a line may be missing, so nothing is confirmed
        self._dir_synced = False

    async def __aenter__(self) -> Manifest:
        # O_APPEND and one os.write per line: no Python buffer that a kill -9 could lose.
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _storage_error("open", self.path, exc) from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)  # so that `sync` after the close has nothing left to do
            except OSError:
                self._failed = True
            finally:
                os.close(fd)

    def append(self, page: Page) -> None:
        """Write `page`'s line. Raises StorageError (a line cut by a full disk is repaired by resume)."""
        assert self._fd is not None, "Manifest used outside `async with`"
        line = memoryview((page.to_json() + "\n").encode())
        try:
            while line:  # a disk filling up mid-line writes part of it, then raises on the rest
                line = line[os.write(self._fd, line) :]
        except OSError as exc:
            self._failed = True
            raise _storage_error("append to", self.path, exc) from exc

    async def sync(self) -> None:
        """Make every line appended so far durable (fsync; the Redis frontier confirms its records
        after it). Raises StorageError when an append failed or the fsync does."""
        fd = self._fd
        try:
            if self._failed:
                raise OSError(0, "an earlier append failed")
            if fd is not None:
                await asyncio.to_thread(os.fsync, fd)
            if not self._dir_synced:  # the file's name too: it was created, or renamed by a repair
                await asyncio.to_thread(_fsync_dir, self.path.parent)
                self._dir_synced = True
        except OSError as exc:
            raise _storage_error("sync", self.path, exc) from None
