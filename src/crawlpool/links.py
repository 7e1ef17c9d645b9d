"""Link extraction: the URLs a fetched page points at, as a pure function of its bytes.

Rules:

- Only ``text/html`` and ``application/xhtml+xml`` bodies are parsed (the media type of the
  ``Content-Type`` header, case-insensitive, parameters ignored). Anything else, or no header at
  all, yields no links: we never sniff images, PDFs, JSON or text/plain for markup.
- Links come from ``a[href]``, ``area[href]``, ``link[href]``, ``iframe[src]`` and
  ``frame[src]``. The first ``base[href]`` in the document sets the base URL for every link,
  including links before it, as in browsers; it is itself resolved against the page URL, and
  ignored if that does not give an http(s) URL. Tag and attribute names are ASCII
  case-insensitive and otherwise literal, as in HTML: ``{x}href`` or ``xlink:href`` is not
  ``href``.
- Nothing inside comments, ``<script>``, ``<style>``, ``<textarea>``, ``<title>`` or other raw-text
  elements counts: the HTML tokenizer never sees tags there. Links inside ``<noscript>`` *do*
  count: they are what a client without JavaScript (a crawler) is offered, and browsers with
  scripting off follow them. ``<template>`` contents count too (libxml2 parses them inline).
- Every link goes through `normalize_url` against the base URL; what it rejects (``mailto:``,
  ``javascript:``, ``data:``, ``tel:``, ``ftp:``, unparseable) is dropped. The result is distinct
  and in document order (first occurrence wins), fragments already removed by `normalize_url`.
- Text decoding follows the WHATWG order: a byte order mark, else the header's ``charset``, else
  a ``<meta>`` declaration in the first `PRESCAN_BYTES` bytes, else UTF-8. A label a browser
  would not honour (``x-bogus``, ``base64``, ``utf-7``...) is skipped as if absent, and bytes
  invalid in the chosen encoding become U+FFFD: decoding never raises. Non-ASCII characters in
  hrefs are percent-encoded by `normalize_url` as UTF-8, also in the query, whatever the page
  encoding (browsers use the page encoding for the query; UTF-8 is what servers expect today).
- Malformed markup, garbage bytes and empty bodies never raise; at worst they yield ``[]``.

Two extractors follow these rules and return identical lists (a parity test holds them to it);
`EXTRACTORS` names them and `get_extractor` picks one, as the ``--parser`` option does:

- ``bs4``, the default `extract_links`: Beautiful Soup over lxml, with a strainer that only
  builds the link tags.
- ``lxml``, `extract_links_lxml`: the same lxml parser without Beautiful Soup, about six times
  faster. It sees exactly the parse events bs4 sees, because it feeds lxml the same text the
  same way and reads only the start tags.

Both are top-level functions, so they pickle for a process pool. Another extractor can plug in
as a `LinkExtractor` and reuse `decode_html` and `resolve_links` so that all agree on charset,
base URL and normalization.
"""

import codecs
import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias, cast

from bs4 import BeautifulSoup, ParserRejectedMarkup, Tag, UnusualUsageWarning
from bs4.element import NamespacedAttribute, XMLAttributeDict
from bs4.filter import SoupStrainer
from lxml import etree

from crawlpool.urls import normalize_url

__all__ = [
    "EXTRACTORS",
    "HTML_TYPES",
    "PRESCAN_BYTES",
    "LinkExtractor",
    "decode_html",
    "extract_links",
    "extract_links_lxml",
    "get_extractor",
    "is_html",
    "resolve_links",
    "sniff_encoding",
]

logger = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

#: How far into the body to look for a ``<meta>`` charset declaration. The HTML standard
#: prescans 1024 bytes; pages with long ``<head>`` preambles put it a little later.
PRESCAN_BYTES = 2048

#: ``extract_links(body, url, content_type) -> links``: any function with this shape can
#: replace the default extractor.
LinkExtractor: TypeAlias = Callable[[bytes, str, str | None], list[str]]

# Tag name -> the attribute holding its URL.
_LINK_ATTRS: dict[str, str] = {
    "a": "href",
    "area": "href",
    "link": "href",
    "iframe": "src",
    "frame": "src",
    "base": "href",
}

# Byte order marks, longest first; each maps to a codec that also strips the mark.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Web labels Python's codec registry does not know, mapped to ones it does.
_LABEL_ALIASES: dict[str, str] = {
    "unicode-1-1-utf-8": "utf-8",
    "iso-8859-8-i": "iso8859-8",
    "koi8-ru": "koi8-u",
    "mac": "mac-roman",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-ukrainian": "mac-cyrillic",
    "windows-874": "cp874",
    "x-cp1250": "cp1250",
    "x-cp1251": "cp1251",
    "x-cp1252": "cp1252",
    "x-gbk": "gbk",
    "csgb2312": "gb2312",
    "cn-big5": "big5",
    "x-x-big5": "big5",
    "x-euc-jp": "euc_jp",
    "x-sjis": "shift_jis",
    "windows-31j": "shift_jis",
    "windows-949": "euc_kr",
}

# Python codec name -> the codec a browser actually decodes with. Only the encodings of the
# WHATWG Encoding Standard are here: anything else (utf-7, utf-32, EBCDIC, and non-text
# "codecs" such as base64 or idna, which would raise on decode) is not a web encoding.
# Several legacy labels decode as a superset, as browsers do (latin-1 pages are really cp1252).
_WEB_CODECS: dict[str, str] = {
    "utf-8": "utf-8",
    "cp866": "cp866",
    **{f"iso8859-{n}": f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)},
    "koi8-r": "koi8-r",
    "koi8-u": "koi8-u",
    "mac-roman": "mac-roman",
    "mac-cyrillic": "mac-cyrillic",
    **{f"cp125{n}": f"cp125{n}" for n in range(9)},
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "cp874": "cp874",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "gb18030": "gb18030",
    "big5": "big5hkscs",
    "big5hkscs": "big5hkscs",
    "euc_jp": "euc_jp",
    "iso2022_jp": "iso2022_jp",
    "shift_jis": "cp932",
    "cp932": "cp932",
    "euc_kr": "cp949",
    "cp949": "cp949",
    "utf-16": "utf-16-le",
    "utf-16-le": "utf-16-le",
    "utf-16-be": "utf-16-be",
}

# Matches both <meta charset="x"> and <meta http-equiv="Content-Type" content="...; charset=x">.
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_COMMENT = re.compile(rb"<!--.*?-->", re.S)


def is_html(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header value names an HTML media type we parse.

    Parameters such as ``charset`` are ignored; ``None`` (no header) means False.
    """
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() in HTML_TYPES


def _web_codec(label: str) -> str | None:
    """The codec to decode with for an encoding label, or None if browsers would not honour it."""
    label = label.strip().strip("\"'").strip().lower()
    label = _LABEL_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):  # ValueError: a NUL byte in the label
        return None
    return _WEB_CODECS.get(name)


def _header_charset(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return _web_codec(value)
    return None


def _meta_charset(body: bytes) -> str | None:
    head = _COMMENT.sub(b"", body[:PRESCAN_BYTES])
    match = _META_CHARSET.search(head)
    if match is None:
        return None
    codec = _web_codec(match.group(1).decode("ascii"))
    # A <meta> we could read as ASCII means the bytes are not UTF-16 whatever it claims;
    # the HTML standard reads such pages as UTF-8.
    if codec in ("utf-16-le", "utf-16-be"):
        return "utf-8"
    return codec


def sniff_encoding(body: bytes, content_type: str | None) -> str:
    """The Python codec to decode an HTML body with: BOM, header, ``<meta>``, else UTF-8.

    A BOM wins over the header, as in browsers: it is evidence about these very bytes, while
    headers are often a server-wide default. The codec returned for a BOM also strips it.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec
    return _header_charset(content_type) or _meta_charset(body) or "utf-8"


def decode_html(body: bytes, content_type: str | None) -> str:
    """The text of an HTML body; never raises, invalid bytes become U+FFFD."""
    return body.decode(sniff_encoding(body, content_type), errors="replace")


def _document_base(page_url: str, base_href: str | None) -> str:
    if base_href is None:
        return page_url
    # An unparseable base falls back to the page URL, as in browsers. So does a non-http(s) one
    # (a browser would resolve against it and get nothing we can fetch; rare either way).
    return normalize_url(base_href, page_url) or page_url


def resolve_links(hrefs: Iterable[str], page_url: str, base_href: str | None = None) -> list[str]:
    """Normalize raw ``href``/``src`` values against the document base, distinct, in order.

    ``base_href`` is the first ``<base href>`` value (None if the page has none); it is
    resolved against ``page_url``, the page's final URL after redirects. Values that do not
    normalize to an http(s) URL are dropped.
    """
    base = _document_base(page_url, base_href)
    # A dict keeps first-seen order and dedupes in one step.
    links: dict[str, None] = {}
    # Pages repeat hrefs a lot (navigation, "#section" anchors), and once lxml parses, normalizing
    # is a large share of the cost: normalize each distinct raw value once.
    for href in dict.fromkeys(hrefs):
        link = normalize_url(href, base)
        if link is not None:
            links[link] = None
    return list(links)


class _LinkStrainer(SoupStrainer):
    """Lets Beautiful Soup build only the link-bearing tags that carry their URL attribute.

    Strings are never built (a strainer with name rules refuses them), so text, comments and
    script bodies cost nothing beyond tokenizing. Overriding the tag check with a dict lookup
    is faster than SoupStrainer's generic rule matching, which runs for every tag in the page.
    """

    def __init__(self) -> None:
        super().__init__(name=list(_LINK_ATTRS))

    def allow_tag_creation(
        self,
        nsprefix: str | None,
        name: str,
        attrs: Mapping[str | NamespacedAttribute, str] | None,
    ) -> bool:
        attr = _LINK_ATTRS.get(name)
        return attr is not None and attrs is not None and attr in attrs


# Built once: it holds no per-parse state.
_STRAINER = _LinkStrainer()


class _HTMLAttributes(XMLAttributeDict):
    """Tag attributes as HTML names them: an attribute called ``{x}href`` is not ``href``.

    bs4's lxml builder reads a name like ``{uri}local`` as lxml's XML namespace notation and makes
    it a `NamespacedAttribute` equal to ``local``, so ``<a {x}href="/y">`` became a link and
    ``<a href="/a" {x}href="/b">`` yielded ``/b``. The HTML parser knows no namespaces, so every
    namespaced key comes from such a name; browsers see no URL attribute there, and neither do we.
    """

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(key, NamespacedAttribute) and key.namespace is not None:
            return
        super().__setitem__(key, value)


def extract_links(body: bytes, url: str, content_type: str | None) -> list[str]:
    """Normalized absolute http(s) URLs linked from an HTML page, distinct, in document order.

    ``url`` is the page's final URL (after redirects); returns [] for non-HTML content types,
    and for pages without any followable link. Never raises on malformed or undecodable input.
    """
    if not is_html(content_type):
        return []
    text = decode_html(body, content_type)
    with warnings.catch_warnings():
        # bs4 warns when a body "looks like" a URL, a filename or non-XHTML XML; for a crawler
        # that is just an odd page, and with warnings-as-errors it would abort the crawl.
        warnings.simplefilter("ignore", UnusualUsageWarning)
        try:
            soup = BeautifulSoup(text, "lxml", parse_only=_STRAINER, attribute_dict_class=_HTMLAttributes)
        except ParserRejectedMarkup:
            logger.debug("lxml rejected the markup of %s", url)
            return []
    base_href: str | None = None
    hrefs: list[str] = []
    for element in soup.descendants:
        if not isinstance(element, Tag) or element.name not in _LINK_ATTRS:
            continue
        value = element.get(_LINK_ATTRS[element.name])
        if not isinstance(value, str):  # only multi-valued attributes (class, rel) are lists
            continue
        if element.name == "base":
            if base_href is None:
                base_href = value
        else:
            hrefs.append(value)
    return resolve_links(hrefs, url, base_href)


class _LinkCollector:
    """An lxml parser target that keeps link tags' URL values and the first ``base`` href.

    It has only ``start`` (and the required ``close``): lxml calls into Python for exactly the
    events its target defines, so text, comments and end tags are never turned into objects.
    """

    __slots__ = ("base_href", "hrefs")

    def __init__(self) -> None:
        self.base_href: str | None = None
        self.hrefs: list[str] = []

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        attr = _LINK_ATTRS.get(tag)
        if attr is None:
            return
        value = attrib.get(attr)
        if value is None:
            return
        if tag != "base":
            self.hrefs.append(value)
        elif self.base_href is None:
            self.base_href = value

    def close(self) -> None:
        return None

    def reset(self) -> None:
        self.base_href = None
        self.hrefs = []


class _LxmlLinks(threading.local):
    """One parser and its collector per thread, reused from page to page.

    Making an lxml parser with a Python target costs more than parsing a small page's tags (lxml
    inspects the target's methods each time). A feed parser is ready for the next document once
    `close` returns; it is per thread because an lxml parser must never be shared between threads.
    """

    def __init__(self) -> None:
        self.collector = _LinkCollector()
        self.parser = self._new_parser()

    def _new_parser(self) -> etree.HTMLParser:
        # ParserTarget exists only in lxml-stubs, whose protocol lists every event method; lxml itself
        # needs none of them, and calls Python only for those the target has.
        return etree.HTMLParser(target=cast("etree.ParserTarget", self.collector))

    def parse(self, text: str) -> tuple[list[str], str | None]:
        """The link values and the first base href of the document `text`."""
        collector = self.collector
        collector.reset()
        try:
            self.parser.feed(text)
            self.parser.close()
        except BaseException:
            # Only a bug or an interrupt gets here: never reuse a parser left mid-document.
            self.parser = self._new_parser()
            raise
        return collector.hrefs, collector.base_href


_LXML = _LxmlLinks()


def extract_links_lxml(body: bytes, url: str, content_type: str | None) -> list[str]:
    """`extract_links` without Beautiful Soup: the same rules and the very same result, faster.

    ``url`` is the page's final URL (after redirects); returns [] for non-HTML content types,
    and for pages without any followable link. Never raises on malformed or undecodable input.
    """
    if not is_html(content_type):
        return []
    # Fed as text, as bs4 does: lxml re-encodes it as UTF-8 and tells libxml2 so, which keeps a
    # <meta> or <?xml?> charset from decoding the page a second time, and unlike fromstring() it
    # accepts text with such a declaration. The push parser also tokenizes exactly as under bs4.
    # Nothing here raises on bad input: in recovery mode (the default) syntax errors are only
    # logged, and the ParserError that bs4 guards against comes from sharing a parser between threads.
    hrefs, base_href = _LXML.parse(decode_html(body, content_type))
    return resolve_links(hrefs, url, base_href)


#: The link extractors by the name the ``--parser`` option uses.
EXTRACTORS: dict[str, LinkExtractor] = {"bs4": extract_links, "lxml": extract_links_lxml}


def get_extractor(name: str) -> LinkExtractor:
    """The extractor called ``name`` in `EXTRACTORS`; raises ValueError naming the known ones."""
    try:
        return EXTRACTORS[name]
    except KeyError:
        known = ", ".join(sorted(EXTRACTORS))
        raise ValueError(f"unknown link extractor {name!r}: choose one of {known}") from None
