"""The output directory: page bodies under `pages/`, and `manifest.jsonl`.

A body is written to a temp file under `.crawlpool/tmp/` and renamed into place, so a page file is either
absent or whole. Temp files live outside `pages/` so they can never be mistaken for, or collide with, a
page. The manifest line for a URL is appended only after its body is on disk (and, with a frontier, after
the frontier committed the record), so every `path` a manifest line names exists.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path
from types import TracebackType

import aiofiles
import aiofiles.os
from aiofiles.threadpool.text import AsyncTextIOWrapper

from crawlpool.errors import ConfigError
from crawlpool.records import Page

MANIFEST_NAME = "manifest.jsonl"
STATE_DIR = ".crawlpool"


def prepare_output(output: Path) -> None:
    """Create OUTPUT and check it is writable, before any request is sent.

    Raises ConfigError when it cannot be created or written, or when it already holds a crawl (crawls
    are never silently mixed)."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / STATE_DIR / "tmp").mkdir(parents=True, exist_ok=True)
        probe = output / STATE_DIR / "tmp" / f"write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"output: cannot write to {output}: {reason}") from None
    if (output / MANIFEST_NAME).exists():
        raise ConfigError(
            f"output: {output} already holds a crawl ({MANIFEST_NAME}); choose another directory or remove it"
        )


class PageStore:
    """Writes page bodies below `OUTPUT/pages/` atomically."""

    def __init__(self, output: Path) -> None:
        self._output = output
        self._tmp_dir = output / STATE_DIR / "tmp"
        self._counter = itertools.count()
        self._made_dirs: set[Path] = set()

    async def write(self, relpath: str, body: bytes) -> str:
        """Store `body` at OUTPUT/`relpath`; return its sha256 (hex)."""
        target = self._output / relpath
        parent = target.parent
        if parent not in self._made_dirs:
            await aiofiles.os.makedirs(parent, exist_ok=True)
            self._made_dirs.add(parent)
        tmp = self._tmp_dir / f"{os.getpid()}-{next(self._counter)}.part"
        async with aiofiles.open(tmp, "wb") as fh:
            await fh.write(body)
        await aiofiles.os.replace(tmp, target)
        return hashlib.sha256(body).hexdigest()


class Manifest:
    """Appends one JSON line per record to `OUTPUT/manifest.jsonl`."""

    def __init__(self, output: Path) -> None:
        self.path = output / MANIFEST_NAME
        self._fh: AsyncTextIOWrapper | None = None

    async def __aenter__(self) -> Manifest:
        self._fh = await aiofiles.open(self.path, "a", encoding="utf-8")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            await self._fh.close()
            self._fh = None

    async def append(self, page: Page) -> None:
        assert self._fh is not None, "Manifest used outside `async with`"
        await self._fh.write(page.to_json() + "\n")
        await self._fh.flush()
