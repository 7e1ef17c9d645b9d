"""The WARC files on disk: their names, their CDXJ indexes, and their repair when a crawl resumes.

A CDXJ index has one line per `response` record, sorted: `SURT-key timestamp {json}`, the json holding
url, mime, status, digest (base32 SHA-1, no `sha1:` prefix), length, offset and filename, as the
indexes pywb builds (`wb-manager add`) do.

Repair (`repair`, on `--resume`). The writer keeps each file's committed exchanges a prefix of it (see
`warc.py`); after a kill, what follows the last committed exchange of a file is at most one exchange whose
manifest record never committed, robots.txt exchanges, and perhaps one gzip member cut short. Repair keeps
the robots.txt exchanges (they have no manifest record to wait for) and the file's warcinfo, drops the
rest, and re-indexes the file. So a URL whose record was lost is fetched again and archived once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

log = logging.getLogger(__name__)

WARC_DIR = "warc"
_NAME = re.compile(r"crawlpool-(\d{14})-(\d{5,})\.warc\.gz")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ_BYTES = 64 * 1024


@dataclass(slots=True)
class IndexEntry:
    urlkey: str
    timestamp: str  # 14 digits, UTC
    url: str
    mime: str
    status: int
    digest: str
    length: int
    offset: int
    filename: str

    def line(self) -> str:
        fields = {
            "url": self.url,
            "mime": self.mime,
            "status": str(self.status),
            "digest": self.digest,
            "length": str(self.length),
            "offset": str(self.offset),
            "filename": self.filename,
        }
        return f"{self.urlkey} {self.timestamp} {json.dumps(fields, ensure_ascii=False)}"


def warc_files(directory: Path) -> list[tuple[int, Path]]:
    """The crawl's WARC files in `directory` with their serials, in the order they were written."""
    found = [(int(m[2]), path) for path in directory.glob("*.warc.gz") if (m := _NAME.fullmatch(path.name))]
    return sorted(found)


def index_path(warc: Path) -> Path:
    return warc.with_name(warc.name.removesuffix(".warc.gz") + ".cdxj")


def is_robots_url(url: str) -> bool:
    """True for a robots.txt URL: its exchanges are archived without a manifest record of their own."""
    parts = urlsplit(url)
    return parts.path == "/robots.txt" and not parts.query


def surt(url: str) -> str:
    """The SURT sort key of `url` (`http://www.Example.com:8080/A?b=1` → `com,example:8080)/a?b=1`)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host = host.removeprefix("www.")
    # Names and IPv4 addresses alike are reversed label by label, as pywb writes them; IPv6 is kept.
    key = f"[{host}]" if ":" in host else ",".join(reversed(host.split(".")))
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        key += f":{port}"
    key += ")" + (parts.path or "/").lower()
    if parts.query:
        key += "?" + "&".join(sorted(parts.query.split("&"))).lower()
    return key


def write_cdxj(path: Path, lines: Iterable[str]) -> None:
    """Write CDXJ `lines` sorted at `path` (through a temp file: never half written)."""
    lines = sorted(lines)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def index_file(warc: Path) -> list[IndexEntry]:
    """The index entries of every `response` record of `warc`, read from the file."""
    entries = []
    with warc.open("rb") as fh:
        records = ArchiveIterator(fh)
        for record in records:
            if record.rec_type != "response":
                continue
            headers = record.rec_headers
            http = record.http_headers
            mime = (http.get_header("Content-Type") or "") if http else ""
            url = headers.get_header("WARC-Target-URI") or ""
            date = (headers.get_header("WARC-Date") or "").replace("-", "").replace(":", "").replace("T", "")
            records.read_to_end(record)
            entries.append(
                IndexEntry(
                    urlkey=surt(url),
                    timestamp=date[:14],
                    url=url,
                    mime=mime.split(";", 1)[0].strip().lower() or "unk",
                    status=int(http.get_statuscode() or 0) if http else 0,
                    digest=(headers.get_header("WARC-Payload-Digest") or "").removeprefix("sha1:"),
                    length=records.get_record_length(),
                    offset=records.get_record_offset(),
                    filename=warc.name,
                )
            )
    return entries


@dataclass(frozen=True, slots=True)
class _Member:
    start: int  # relative to the bytes scanned
    end: int
    warc_type: str
    target_uri: str


def _members(data: bytes) -> list[_Member]:
    """The whole gzip members at the start of `data`, up to the first one cut short or corrupt."""
    members = []
    pos = 0
    view = memoryview(data)
    while pos < len(data):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        head = b""
        fed = pos
        try:
            while not inflater.eof and fed < len(data):
                chunk = view[fed : fed + _READ_BYTES]
                fed += len(chunk)
                out = inflater.decompress(chunk)
                if len(head) < _READ_BYTES:
                    head += out[:_READ_BYTES]
        except zlib.error:
            break
        if not inflater.eof or not head.startswith(b"WARC/"):
            break
        end = fed - len(inflater.unused_data)
        fields = _warc_fields(head)
        members.append(_Member(pos, end, fields.get("warc-type", ""), fields.get("warc-target-uri", "")))
        pos = end
    return members


def _warc_fields(head: bytes) -> dict[str, str]:
    block = head.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = {}
    for line in block.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return fields


def repair_warc_files(directory: Path, committed: dict[str, int]) -> int:
    """Make the WARC files of `directory` hold exactly the committed exchanges (and robots.txt ones).

    `committed` maps each file (`warc/NAME`, as in the manifest) to the offset of the last committed
    response record in it. Returns how many records were dropped."""
    for leftover in [*directory.glob("*.cdxj.unsorted"), *directory.glob("*.cdxj.part")]:
        leftover.unlink()  # an index the killed run was gathering: rebuilt from its file below
    return repair_some_warc_files([path for _, path in warc_files(directory)], committed)


def repair_some_warc_files(paths: list[Path], committed: dict[str, int]) -> int:
    """`repair_warc_files` for `paths` only: the files of a crawl's worker processes that ended, while
    other processes still write theirs (multiproc)."""
    dropped = 0
    for path in paths:
        index = index_path(path)
        for leftover in (index.with_name(index.name + ".unsorted"), index.with_name(index.name + ".part")):
            leftover.unlink(missing_ok=True)  # an index its killed writer was gathering: rebuilt below
        last = committed.get(f"{WARC_DIR}/{path.name}")
        with path.open("r+b") as fh:
            start = last or 0
            fh.seek(start)
            tail = fh.read()
            members = _members(tail)
            keep_from = 0
            if last is not None:
                if not members or members[0].warc_type != "response":
                    log.warning("%s: no response record at offset %d; left as it is", path, last)
                    continue
                keep_from = 2 if len(members) > 1 and members[1].warc_type == "request" else 1
            kept = b""
            for i, member in enumerate(members[keep_from:], keep_from):
                at_file_start = last is None and i == 0
                if (at_file_start and member.warc_type == "warcinfo") or is_robots_url(member.target_uri):
                    kept += tail[member.start : member.end]
                else:
                    dropped += 1
            cut = start + (members[keep_from - 1].end if keep_from else 0)
            changed = cut + len(kept) != start + len(tail)
            if changed:
                fh.seek(cut)
                fh.write(kept)
                fh.truncate(cut + len(kept))
                if len(tail) > sum(m.end - m.start for m in members):
                    dropped += 1  # a member cut short by the kill
        index = index_path(path)
        if path.stat().st_size == 0:
            path.unlink()
            index.unlink(missing_ok=True)
        elif changed or not index.exists():
            try:
                write_cdxj(index, (entry.line() for entry in index_file(path)))
            except ArchiveLoadFailed as exc:
                log.warning("%s: cannot index it: %s", path, exc)
    return dropped
