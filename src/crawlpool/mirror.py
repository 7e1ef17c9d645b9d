"""`crawlpool mirror OUTPUT DEST`: a copy of a crawl you can browse offline, as wget -k -E makes.

It reads OUTPUT/manifest.jsonl (a crawl still running or interrupted too: a line cut short is skipped)
and never changes OUTPUT, so every `sha256` in the manifest stays true of `pages/`.

- Every stored body gets a name under DEST (`mirror_paths.py`): HTML pages end in `.html`.
- In HTML pages, every link (`href`, `src`, `srcset`, `<style>` and `style=` `url()`, and what else lxml's
  `rewrite_links` finds) that leads to a stored body, directly or through recorded redirects, becomes a
  relative path to its copy; every other link becomes absolute (wget -k's rule), so it still works
  online. `<base href>` is applied, then removed. The page is written as UTF-8, its `<meta charset>` said
  so. CSS files get the same treatment for `url()` and `@import`.
- Other bodies are hard-linked (copied where a link cannot be made).
- DEST/index.html lists the crawl's seeds.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urldefrag, urljoin

import lxml.html
from lxml import etree

from crawlpool.errors import ConfigError
from crawlpool.links import decode_html, is_html
from crawlpool.mirror_paths import assign_names
from crawlpool.requisites import CSS_URL, is_css
from crawlpool.store import MANIFEST_NAME
from crawlpool.urls import normalize_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 20
_SAFE = "/@!$&'()*+,;=-._~"  # what a relative path may keep as it is; `%` in a name becomes `%25`
_CSS_URL = CSS_URL  # the stylesheet links the crawl fetches (`--page-requisites`) are those it rewrites
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


@dataclass(frozen=True, slots=True)
class MirrorReport:
    pages: int  # HTML pages written with their links rewritten
    styles: int  # CSS files rewritten
    files: int  # other bodies linked or copied
    seeds: int


def read_records(output: Path) -> Iterator[dict[str, Any]]:
    """The manifest's records; a line that is not whole JSON (a crawl killed mid-line) is skipped."""
    manifest = output / MANIFEST_NAME
    try:
        fh = manifest.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(f"mirror: {output} holds no crawl ({manifest} not found)") from None
    except OSError as exc:
        raise ConfigError(f"mirror: cannot read {manifest}: {exc.strerror}") from None
    with fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("url"), str):
                yield record


def build_mirror(output: Path, dest: Path) -> MirrorReport:
    """Write the browsable copy of the crawl in `output` to `dest` (which must be new or empty).
    Raises ConfigError for a missing crawl or a DEST in the way."""
    records = list(read_records(output))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"mirror: {dest} already exists and is not an empty directory")
    stored = [r for r in records if r.get("path") and (output / r["path"]).is_file()]
    names = assign_names((r["url"], r["path"], is_html(r.get("content_type"))) for r in stored)
    redirects = {
        r["url"]: r["final_url"]
        for r in records
        if isinstance(r.get("status"), int) and 300 <= r["status"] < 400 and r.get("final_url")
    }
    resolve = _resolver(names, redirects)
    pages = styles = files = 0
    for record in stored:
        source = output / record["path"]
        target = names[record["url"]]
        path = dest / target
        path.parent.mkdir(parents=True, exist_ok=True)
        content_type = record.get("content_type")
        if is_html(content_type):
            body = source.read_bytes()
            path.write_bytes(rewrite_html(body, content_type, record["url"], target, resolve))
            pages += 1
        elif is_css(content_type):
            body = source.read_bytes()
            path.write_bytes(rewrite_css(body, record["url"], target, resolve))
            styles += 1
        else:
            _link_or_copy(source, path)
            files += 1
    seeds = [r["url"] for r in records if r.get("depth") == 0 and r.get("referrer") is None]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "index.html").write_text(_index_page(output, seeds, resolve), encoding="utf-8")
    return MirrorReport(pages, styles, files, len(seeds))


def _resolver(names: dict[str, str], redirects: dict[str, str]) -> Callable[[str], str | None]:
    """url → the mirror path of what it leads to (following recorded redirects), or None."""

    def resolve(url: str) -> str | None:
        for _ in range(MAX_REDIRECTS + 1):
            if url in names:
                return names[url]
            target = redirects.get(url)
            if target is None:
                return None
            url = target
        return None

    return resolve


def _relative_link(link: str, base_url: str, here: str, resolve: Callable[[str], str | None]) -> str:
    """A link as it should read in the mirror file at `here`: relative to the local copy of what it
    leads to, or else absolute."""
    absolute = urljoin(base_url, link.strip())
    url, fragment = urldefrag(absolute)
    normalized = normalize_url(url)
    target = resolve(normalized) if normalized else None
    if target is None:
        return absolute
    relative = posixpath.relpath(target, posixpath.dirname(here) or ".")
    return quote(relative, safe=_SAFE) + (f"#{fragment}" if fragment else "")


def rewrite_html(
    body: bytes, content_type: str | None, page_url: str, here: str, resolve: Callable[[str], str | None]
) -> bytes:
    """`body` with its links rewritten for the mirror file at `here`, as UTF-8."""
    text = _XML_DECLARATION.sub("", decode_html(body, content_type))
    try:
        doc: Any = lxml.html.document_fromstring(text)  # Any: lxml-stubs lack rewrite_links, docinfo
    except (etree.ParserError, ValueError):  # an empty or unparseable page is kept as it came
        return body
    base_url = page_url
    for base in doc.iter("base"):
        if base.get("href"):
            base_url = urljoin(page_url, base.get("href", ""))
            break
    for element in doc.xpath("//*[@srcset]"):
        element.set("srcset", _rewrite_srcset(element.get("srcset", ""), base_url, here, resolve))
    doc.rewrite_links(lambda link: _relative_link(link, base_url, here, resolve), resolve_base_href=False)
    for base in list(doc.iter("base")):
        base.getparent().remove(base)
    _declare_utf8(doc)
    doctype = doc.getroottree().docinfo.doctype or "<!DOCTYPE html>"
    page: str = lxml.html.tostring(doc, encoding="unicode", doctype=doctype)
    return page.encode("utf-8")


def _rewrite_srcset(srcset: str, base_url: str, here: str, resolve: Callable[[str], str | None]) -> str:
    candidates = []
    for candidate in srcset.split(","):
        parts = candidate.split()
        if not parts:
            continue
        if not parts[0].startswith("data:"):
            parts[0] = _relative_link(parts[0], base_url, here, resolve)
        candidates.append(" ".join(parts))
    return ", ".join(candidates)


def _declare_utf8(doc: Any) -> None:
    """Make the page say it is UTF-8 (it is written so), in place of any charset it declared."""
    for meta in list(doc.iter("meta")):
        if meta.get("charset") is not None or (meta.get("http-equiv") or "").lower() == "content-type":
            meta.getparent().remove(meta)
    head = doc.find("head")
    if head is None:
        head = lxml.html.Element("head")
        doc.insert(0, head)
    meta = lxml.html.Element("meta", charset="utf-8")
    head.insert(0, meta)


def rewrite_css(body: bytes, css_url: str, here: str, resolve: Callable[[str], str | None]) -> bytes:
    """A stylesheet with its `url()` and `@import` links rewritten for the mirror file at `here`."""
    text = body.decode("utf-8", errors="surrogateescape")

    def replace(match: re.Match[str]) -> str:
        if match.group(3):  # @import "x"
            link = _relative_link(match.group(5), css_url, here, resolve)
            return f"{match.group(3)}{match.group(4)}{link}{match.group(4)}"
        link = match.group(2)
        if not link or link.startswith("data:"):
            return match.group(0)
        quote_char = match.group(1)
        return f"url({quote_char}{_relative_link(link, css_url, here, resolve)}{quote_char})"

    return _CSS_URL.sub(replace, text).encode("utf-8", errors="surrogateescape")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(source, target)


def _index_page(output: Path, seeds: list[str], resolve: Callable[[str], str | None]) -> str:
    items = []
    for seed in seeds:
        target = resolve(seed)
        href = quote(target, safe=_SAFE) if target else seed
        items.append(f'<li><a href="{escape(href)}">{escape(seed)}</a></li>')
    listing = "\n".join(items) or "<li>no seed was crawled</li>"
    title = escape(f"crawlpool mirror of {output}")
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n<ul>\n{listing}\n</ul>\n</body></html>\n"
    )
