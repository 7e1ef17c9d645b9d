"""Sitemaps (sitemaps.org protocol 0.9) read as a stream: bytes in, `SitemapEntry` batches out.

Theory of operation. `SitemapParser` is fed the body a chunk at a time as it arrives and hands back
the entries each chunk completed, so a sitemap is never held whole, and neither is its list of URLs: the
caller queues each batch and drops it. What the body is, is found from its first bytes, never from its
name or Content-Type (servers label `.xml.gz` every way there is):

    first bytes      read as
    1f 8b            gzip, decompressed here (bounded: never more than the cap is inflated)
    '<' (after a     XML, with lxml's pull parser: `<urlset>` gives pages, `<sitemapindex>` sitemaps;
     BOM/blanks)     namespaces ignored (many sitemaps omit or misspell theirs); no DTD, entities or
                     network access, so an XML bomb or an external entity gets nowhere
    anything else    plain text: one URL per line

Why not a sitemap library: those checked (ultimate-sitemap-parser, Scrapy's `Sitemap`) fetch by
themselves or parse a whole body at once; lxml's `XMLPullParser` is fed bytes as they arrive, which is
what a crawl's own fetcher, politeness and bounded memory need.

The protocol's limits are enforced (no crawler checked enforces them): at most `MAX_URLS` entries and
`MAX_BYTES` after decompression. Past either the parser stops (`full` turns True: the caller stops
reading) and `problem` says what was left out; what came before is kept. A body that is not well-formed
XML keeps the entries read before the fault, and `problem` names it. Neither raises.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from lxml import etree

MAX_URLS = 50_000  # sitemaps.org: "no more than 50,000 URLs"
MAX_BYTES = 50 * 1024 * 1024  # sitemaps.org: "no larger than 50MB (52,428,800 bytes)", uncompressed
GUNZIP_STEP_BYTES = 256 * 1024  # inflated per step: a highly compressed chunk never becomes 50 MB at once
MAX_LINE_CHARS = 8192  # a plain-text line longer than this is no URL we would fetch: skipped

_GZIP_MAGIC = b"\x1f\x8b"
_ENTRY_TAGS = {"url": False, "sitemap": True}  # element -> whether its <loc> names a sitemap


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    """One `<url>` or `<sitemap>` of a sitemap (or a line of a text one): `loc` as written (stripped),
    `lastmod` as written or None, `is_sitemap` for an entry of a sitemap index."""

    loc: str
    lastmod: str | None = None
    is_sitemap: bool = False


class SitemapParser:
    """Parse one sitemap body fed in chunks. `feed` and `close` return the entries completed so far."""

    def __init__(self, *, max_urls: int = MAX_URLS, max_bytes: int = MAX_BYTES) -> None:
        self._max_urls = max_urls
        self._max_bytes = max_bytes
        self.entries = 0  # entries handed out
        self.bytes = 0  # body bytes read, after decompression
        self.problem: str | None = None  # why part of the sitemap was left out, or None
        self.kind: str | None = None  # "urlset", "sitemapindex", "text" once known
        self._head = b""  # the first bytes, until the format is known
        self._gunzip: Any = None
        self._xml: Any = None
        self._text_tail = b""
        self._stopped = False
        self._loc: str | None = None
        self._lastmod: str | None = None

    @property
    def full(self) -> bool:
        """True once nothing more will be read (a limit was reached, or the XML broke)."""
        return self._stopped

    def feed(self, chunk: bytes) -> list[SitemapEntry]:
        if self._stopped or not chunk:
            return []
        if self._gunzip is None and self._xml is None and self.kind is None:
            self._head += chunk
            if len(self._head) < 2:
                return []
            chunk, self._head = self._head, b""
            if chunk.startswith(_GZIP_MAGIC):
                self._gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._gunzip is None:
            return self._take(chunk)
        out: list[SitemapEntry] = []
        data = chunk
        while data and not self._stopped:
            try:
                plain = self._gunzip.decompress(
                    data, min(GUNZIP_STEP_BYTES, self._max_bytes - self.bytes + 1)
                )
            except zlib.error as exc:
                self._stop(f"sitemap: corrupt gzip: {exc}")
                break
            out += self._take(plain)
            data = self._gunzip.unconsumed_tail
        return out

    def close(self) -> list[SitemapEntry]:
        """The body has ended: the entries its last bytes completed."""
        out: list[SitemapEntry] = []
        if self._head:
            head, self._head = self._head, b""
            out += self._take(head)
        if self._stopped:
            return out
        if self._gunzip is not None and not self._gunzip.eof:
            self._stop("sitemap: gzip stream ended early")
        if self.kind == "text" and self._text_tail:
            out += self._lines(b"\n")
        elif self._xml is not None and not self._stopped:
            try:
                self._xml.close()
            except etree.XMLSyntaxError as exc:
                self._stop(f"sitemap: malformed XML: {exc.msg}")
            out += self._events()
        elif self.kind is None and self.problem is None:
            self._stop("sitemap: empty body")
        self._stopped = True
        return out

    # -- internals ------------------------------------------------------------------------------------

    def _take(self, data: bytes) -> list[SitemapEntry]:
        """Decompressed bytes: count them against the cap, then parse them as what the body is."""
        if self._stopped or not data:
            return []
        room = self._max_bytes - self.bytes
        over = len(data) > room
        data = data[:room]
        self.bytes += len(data)
        out = self._parse(data)
        if over and not self._stopped:
            self._stop(f"sitemap_limit: larger than {self._max_bytes} bytes; the rest was ignored")
        return out

    def _parse(self, data: bytes) -> list[SitemapEntry]:
        if self.kind is None:
            stripped = data.lstrip(b" \t\r\n\xef\xbb\xbf")
            if not stripped:
                return []  # only blanks so far: the next bytes decide
            if stripped.startswith(b"<"):
                self.kind = "xml"
                self._xml = etree.XMLPullParser(
                    events=("start", "end"),
                    resolve_entities=False,
                    no_network=True,
                    load_dtd=False,
                    huge_tree=False,
                )
            else:
                self.kind = "text"
        if self.kind == "text":
            return self._lines(data)
        try:
            self._xml.feed(data)
        except etree.XMLSyntaxError as exc:
            out = self._events()
            self._stop(f"sitemap: malformed XML: {exc.msg}")
            return out
        return self._events()

    def _lines(self, data: bytes) -> list[SitemapEntry]:
        lines = (self._text_tail + data).split(b"\n")
        self._text_tail = lines.pop()
        if len(self._text_tail) > MAX_LINE_CHARS:
            self._text_tail = self._text_tail[:MAX_LINE_CHARS]  # never a URL we use: keep it bounded
        out: list[SitemapEntry] = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").strip()
            if line and len(line) <= MAX_LINE_CHARS and not self._add(out, SitemapEntry(line)):
                break
        return out

    def _events(self) -> list[SitemapEntry]:
        out: list[SitemapEntry] = []
        for event, element in self._xml.read_events():
            if self._stopped:
                break
            name = etree.QName(element).localname if isinstance(element.tag, str) else ""
            if event == "start":
                if self.kind == "xml":
                    self.kind = name.lower() if name.lower() in ("urlset", "sitemapindex") else "urlset"
                continue
            if name == "loc":
                self._loc = (element.text or "").strip() or None
            elif name == "lastmod":
                self._lastmod = (element.text or "").strip() or None
            elif name in _ENTRY_TAGS:
                loc, lastmod = self._loc, self._lastmod
                self._loc = self._lastmod = None
                if loc is not None:
                    is_sitemap = _ENTRY_TAGS[name] and self.kind == "sitemapindex"
                    if not self._add(out, SitemapEntry(loc, lastmod, is_sitemap)):
                        break
            else:
                continue
            # Drop what is read: the tree never holds more than the entry being parsed.
            element.clear()
            parent = element.getparent()
            while element.getprevious() is not None and parent is not None:
                del parent[0]
        return out

    def _add(self, out: list[SitemapEntry], entry: SitemapEntry) -> bool:
        if self.entries >= self._max_urls:
            self._stop(f"sitemap_limit: more than {self._max_urls} URLs; the rest were ignored")
            return False
        self.entries += 1
        out.append(entry)
        return True

    def _stop(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem
        self._stopped = True
