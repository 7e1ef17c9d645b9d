"""Archive output (`--warc`): every HTTP exchange as a `response` and a `request` WARC/1.1 record.

    OUTPUT/warc/crawlpool-<UTC timestamp>-<serial>.warc.gz    records, one gzip member each
    OUTPUT/warc/crawlpool-<UTC timestamp>-<serial>.cdxj       its index, written when the file is closed

Records are made with warcio. A file opens with a `warcinfo` record (software, format, the crawl's
options); each exchange is its `response` record (status line and headers as received, the body as sent,
still under its Content-Encoding) followed by its `request` record, each naming the other in
`WARC-Concurrent-To`. aiohttp removes chunked framing, so the stored headers drop `Transfer-Encoding` and
carry a `Content-Length` equal to the stored body; `WARC-Block-Digest` and `WARC-Payload-Digest` are over
what is stored, and a body cut short says so in `WARC-Truncated`. Non-ASCII header values are
percent-encoded (warcio's rule). A file is closed, and the next serial opened, before the first exchange
that would start past `max_bytes`; so a file passes it by at most one exchange.

Exactly once. The engine holds `WarcWriter.order` from appending a page's exchange until the frontier
has acked its record (and takes the exchange back with `undo` when the ack is refused). So the exchanges
of committed records form a prefix of each file, and what follows the last committed one is at most one
exchange whose record never committed, plus robots.txt exchanges: resume
(`warc_index.repair_warc_files`) keeps those and cuts the rest. An append is one `os.write` of whole gzip
members, so a kill leaves at most one member cut short, at the end. Building the records (warcio,
digests, gzip) is the CPU of archiving; see `WarcWriter.build` for where it runs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter

from crawlpool.errors import StorageError
from crawlpool.exchange import IDENTICAL_PAYLOAD, Exchange
from crawlpool.fetch import body_expected
from crawlpool.warc_index import WARC_DIR, IndexEntry, index_path, surt, warc_files, write_cdxj

_T = TypeVar("_T")
# zlib level 1: on a 30 KB page it takes 30 µs where warcio's 9 takes ~150 and 6 ~100, for files
# ~10-25% larger than 6's; on 2 cores, where the crawl is CPU-bound, that is most of --warc's cost.
GZIP_LEVEL = 1
INLINE_BUILD_BYTES = 256 * 1024  # larger exchanges are built in the writer's thread
INDEX_LINES_KEPT = 10_000  # index lines held in memory before they are spilled to disk
_FRAMING_HEADERS = frozenset({"transfer-encoding", "content-length"})


@dataclass(frozen=True, slots=True)
class WarcLocation:
    """Where an exchange's `response` record starts: `file` relative to OUTPUT, `offset` in bytes."""

    file: str
    offset: int
    end: int  # the end of the exchange (its request record) in the file


def gzip_member(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _record_bytes(record: Any) -> bytes:
    out = BytesIO()
    WARCWriter(out, gzip=False, warc_version="WARC/1.1").write_record(record)
    return out.getvalue()


def _warc_date(when: datetime) -> str:
    return str(datetime_to_iso_date(when.astimezone(UTC).replace(tzinfo=None), use_micros=True))


def stored_response_headers(exchange: Exchange) -> list[tuple[str, str]]:
    """The response headers as received, with framing made true of the stored body: no
    Transfer-Encoding (aiohttp removed the chunks) and a Content-Length equal to the stored body's."""
    if not body_expected("GET", exchange.status):
        return list(exchange.response_headers)  # no body whatever the headers say: leave them as sent
    length = str(len(exchange.payload))
    headers = []
    for name, value in exchange.response_headers:
        lower = name.lower()
        if lower == "content-length" and length:
            headers.append((name, length))  # in its place; a duplicate is dropped
            length = ""
        elif lower not in _FRAMING_HEADERS:
            headers.append((name, value))
    if length:
        headers.append(("Content-Length", length))
    return headers


@dataclass(slots=True)
class BuiltExchange:
    """An exchange's two records as gzip members, and the index line of its response."""

    response: bytes
    request: bytes
    entry: IndexEntry


def build_exchange(exchange: Exchange, builder: WARCWriter, level: int = GZIP_LEVEL) -> BuiltExchange:
    """The `response` and `request` records of `exchange`, each one gzip member."""
    date = _warc_date(exchange.started)
    response_id = builder._make_warc_id()
    request_id = builder._make_warc_id()
    common = {"WARC-Target-URI": exchange.url, "WARC-Date": date}
    if exchange.peer_ip:
        common["WARC-IP-Address"] = exchange.peer_ip
    response_headers = {**common, "WARC-Record-ID": response_id, "WARC-Concurrent-To": request_id}
    if exchange.truncated:
        response_headers["WARC-Truncated"] = exchange.truncated
    http_response = StatusAndHeaders(
        f"{exchange.status} {exchange.reason}".strip(),
        stored_response_headers(exchange) if exchange.revisit is None else list(exchange.response_headers),
        protocol=f"HTTP/{exchange.http_version}",
    )
    revisit = exchange.revisit
    # A revisit's block is the HTTP head alone: its payload is the one the earlier record holds.
    payload = exchange.payload if revisit is None else b""
    response_headers.update(_digests(http_response, payload))
    if revisit is not None:
        if revisit.profile == IDENTICAL_PAYLOAD:
            response_headers["WARC-Payload-Digest"] = _sha1_label(hashlib.sha1(exchange.payload).digest())
        else:
            del response_headers["WARC-Payload-Digest"]
        response_headers["WARC-Profile"] = revisit.profile
        response_headers["WARC-Refers-To-Target-URI"] = revisit.url
        response_headers["WARC-Refers-To-Date"] = _warc_date(revisit.date)
    response = builder.create_warc_record(
        exchange.url,
        "response" if revisit is None else "revisit",
        payload=BytesIO(payload),
        length=len(payload),
        warc_headers_dict=response_headers,
        http_headers=http_response,
    )
    http_request = StatusAndHeaders(
        f"GET {exchange.request_target} HTTP/{exchange.http_version}",
        list(exchange.request_headers),
        is_http_request=True,
    )
    request_headers = {**common, "WARC-Record-ID": request_id, "WARC-Concurrent-To": response_id}
    request = builder.create_warc_record(
        exchange.url,
        "request",
        payload=BytesIO(b""),
        length=0,
        warc_headers_dict={**request_headers, **_digests(http_request, b"")},
        http_headers=http_request,
    )
    response_member = gzip_member(_record_bytes(response), level)
    request_member = gzip_member(_record_bytes(request), level)
    mime = http_response.get_header("Content-Type") or ""
    entry = IndexEntry(
        urlkey=surt(exchange.url),
        timestamp=exchange.started.astimezone(UTC).strftime("%Y%m%d%H%M%S"),
        url=exchange.url,
        # pywb's convention: a revisit's index line says so in place of a media type
        mime="warc/revisit" if revisit is not None else mime.split(";", 1)[0].strip().lower() or "unk",
        status=exchange.status,
        digest=(response.rec_headers.get_header("WARC-Payload-Digest") or "").removeprefix("sha1:"),
        length=len(response_member),
        offset=0,
        filename="",
    )
    return BuiltExchange(response_member, request_member, entry)


def _digests(http: StatusAndHeaders, payload: bytes) -> dict[str, str]:
    """WARC-Payload-Digest and WARC-Block-Digest of a record: given to warcio, which then skips its own
    pass over the body in 16 KB Python steps (a third of the build's time on a 30 KB page). The block
    is the HTTP head as warcio writes it (`compute_headers_buffer`, deterministic) and the payload."""
    http.compute_headers_buffer()
    block = hashlib.sha1(http.headers_buff)
    block.update(payload)
    return {
        "WARC-Payload-Digest": _sha1_label(hashlib.sha1(payload).digest()),
        "WARC-Block-Digest": _sha1_label(block.digest()),
    }


def _sha1_label(digest: bytes) -> str:
    return "sha1:" + base64.b32encode(digest).decode("ascii")


@dataclass(slots=True)
class _OpenFile:
    """The file being written, and its index lines so far: the last ones in memory, the rest spilled,
    unsorted, to `<name>.cdxj.unsorted` (a 1 GB file of small records holds ~10^6 of them)."""

    path: Path
    fd: int
    size: int
    lines: list[str] = field(default_factory=list)

    @property
    def spill(self) -> Path:
        return index_path(self.path).with_suffix(".cdxj.unsorted")


class WarcWriter:
    """Appends exchanges to OUTPUT/warc/, one file at a time.

    Use inside `async with`. `build` makes an exchange's records (warcio, digests, gzip); `append`
    writes them, and must be awaited holding `order` until the commit it belongs to is done (see the
    module docstring). Large exchanges are built and written in a thread of the writer's own, small
    ones on the event loop (see `build` and `append` for the measurements behind that). Raises
    StorageError when the disk refuses a write."""

    def __init__(self, output: Path, *, max_bytes: int, info: dict[str, str], level: int = GZIP_LEVEL):
        self._output = output
        self._dir = output / WARC_DIR
        self._max_bytes = max_bytes
        self._info = info
        self._level = level
        self._builder = WARCWriter(BytesIO(), gzip=False, warc_version="WARC/1.1")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crawlpool-warc")
        self._file: _OpenFile | None = None
        self._serial = 0
        self.order = asyncio.Lock()
        self.files: list[str] = []  # the files this writer opened, as `warc/NAME`

    async def __aenter__(self) -> WarcWriter:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _storage_error("create", self._dir, exc) from None
        existing = warc_files(self._dir)
        if existing:
            self._serial = existing[-1][0] + 1  # a resumed crawl goes on in a new file
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            async with self.order:
                await self._in_thread(self._close)
        finally:
            self._thread.shutdown(wait=True)

    async def build(self, exchange: Exchange) -> BuiltExchange:
        """`exchange`'s records, ready to append: a large one made in the writer's thread, a small one
        here. Measured on the benchmark site (30 KB pages): a small build takes ~0.13 ms, and done in
        the thread it cost the crawl ~20% of its pages/s, not for the hop but for the GIL: every
        GIL-releasing call of the event loop (socket reads, hashing a body, SQLite) then waited for
        the thread's Python to let go of it. A large body's build is mostly gzip and hashing, which
        release the GIL, and would stall the loop for longer than that."""
        if len(exchange.payload) <= INLINE_BUILD_BYTES:
            return build_exchange(exchange, self._builder, self._level)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, build_exchange, exchange, self._builder, self._level)

    async def append(self, built: BuiltExchange) -> WarcLocation:
        """Write `built`; where its response record starts. Hold `order` around it and its commit.

        A small exchange is written here, a large one from the writer's thread. The commit lock is held
        across the append, so a hop to the thread is paid by every commit in turn: measured on the
        benchmark site, it made commits queue behind it and cost ~15% of pages/s. A write of a few
        kilobytes into the page cache is what the manifest line and the SQLite commit beside it already
        do on the loop."""
        if len(built.response) + len(built.request) <= INLINE_BUILD_BYTES:
            return self._guarded(self._append, built)
        where: WarcLocation = await self._in_thread(self._append, built)
        return where

    async def undo(self, where: WarcLocation) -> None:
        """Take back the exchange just appended at `where` (its record was not committed)."""
        self._guarded(self._undo, where)

    async def write_unrecorded(self, exchange: Exchange) -> None:
        """Archive an exchange that has no manifest record of its own (a robots.txt fetch)."""
        built = await self.build(exchange)
        async with self.order:
            await self.append(built)

    async def _in_thread(self, func: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, func, *args)
        except OSError as exc:
            raise _storage_error("write to", self._dir, exc) from None

    def _guarded(self, func: Callable[..., _T], *args: Any) -> _T:
        try:
            return func(*args)
        except OSError as exc:
            raise _storage_error("write to", self._dir, exc) from None

    # The methods below touch the open file; they run one at a time (under `order`), some in the thread.

    def _append(self, built: BuiltExchange) -> WarcLocation:
        current = self._file
        if current is None or current.size >= self._max_bytes:
            current = self._rotate()
        offset = current.size
        _write_all(current.fd, built.response + built.request)
        current.size = end = offset + len(built.response) + len(built.request)
        built.entry.offset, built.entry.filename = offset, current.path.name
        if len(current.lines) >= INDEX_LINES_KEPT:
            _spill(current)  # before this exchange's line, which `undo` may take back
        current.lines.append(built.entry.line())
        return WarcLocation(f"{WARC_DIR}/{current.path.name}", offset, end)

    def _undo(self, where: WarcLocation) -> None:
        current = self._file
        if current is None or f"{WARC_DIR}/{current.path.name}" != where.file or current.size != where.end:
            return  # not the last exchange written: never happens while `order` is held
        os.ftruncate(current.fd, where.offset)
        current.size = where.offset
        current.lines.pop()  # the line `_append` added last

    def _rotate(self) -> _OpenFile:
        self._close()
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        while True:  # the worker processes of a crawl (multiproc) write files side by side
            path = self._dir / f"crawlpool-{stamp}-{self._serial:05d}.warc.gz"
            self._serial += 1
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                continue
            break
        self.files.append(f"{WARC_DIR}/{path.name}")
        info = self._builder.create_warcinfo_record(path.name, self._info)
        head = gzip_member(_record_bytes(info), self._level)
        _write_all(fd, head)
        self._file = _OpenFile(path, fd, len(head))
        return self._file

    def _close(self) -> None:
        current, self._file = self._file, None
        if current is None:
            return
        os.close(current.fd)
        _spill(current)
        with current.spill.open(encoding="utf-8") as fh:
            write_cdxj(index_path(current.path), (line.rstrip("\n") for line in fh))
        current.spill.unlink()


def warcinfo_fields(options: dict[str, object], version: str) -> dict[str, str]:
    """The warcinfo record's fields: software, format and the crawl's options."""
    fields = {
        "software": f"crawlpool/{version} (+warcio)",
        "format": "WARC File Format 1.1",
        "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
    }
    for name, value in options.items():
        fields[f"crawlpool-{name.replace('_', '-')}"] = _field_value(value)
    return fields


def _field_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _spill(current: _OpenFile) -> None:
    with current.spill.open("a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in current.lines))
    current.lines.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _storage_error(action: str, path: Path, exc: OSError) -> StorageError:
    return StorageError(f"storage: cannot {action} {path}: {exc.strerror or type(exc).__name__}")
