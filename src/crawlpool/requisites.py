"""Page requisites (`--page-requisites`): what a stored page needs to render, as a pure function of its
bytes, like wget's `-p`.

In HTML: `img[src]`, `img[srcset]` and `source[srcset|src]` (every candidate), `script[src]`,
`link[href]` whose `rel` is a stylesheet, an icon, a manifest or a preload, `input[type=image][src]`,
`video[poster]`, and `url()` / `@import` in `<style>` elements and `style=` attributes. In CSS (a
`text/css` body): `url()` and `@import`. `data:` URLs, and anything `normalize_url` rejects, are skipped.
The first `base[href]` sets the base URL, as for links. Results are distinct, in document order.

The engine queues them as requests of kind `requisite`: fetched from any host (robots.txt, politeness,
the address guard and the trap guards still apply), at their page's depth (a requisite is not a hop), never
followed as pages; a requisite stylesheet's own requisites are queued in turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin

import lxml.html
from lxml import etree

from crawlpool.links import decode_html
from crawlpool.urls import normalize_url

# url(x), url('x'), url("x"), and @import "x" / @import 'x' (an @import url(x) is the url() form).
CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]*?)\1\s*\)|(@import\s+)(['"])([^'"]+)\4""", re.I)
REQUISITE_RELS = frozenset(
    {"stylesheet", "icon", "shortcut", "apple-touch-icon", "mask-icon", "manifest"}
    | {"preload", "modulepreload"}
)


def is_css(content_type: str | None) -> bool:
    return content_type is not None and content_type.partition(";")[0].strip().lower() == "text/css"


def css_urls(text: str) -> list[str]:
    """The URLs a stylesheet's text names in `url()` and `@import`, as written (`data:` left out)."""
    found = []
    for match in CSS_URL.finditer(text):
        link = match.group(5) if match.group(3) else match.group(2)
        if link and not link.strip().lower().startswith("data:"):
            found.append(link.strip())
    return found


def css_requisites(body: bytes, url: str) -> list[str]:
    """The requisites of a stylesheet at `url`."""
    return _resolved(css_urls(body.decode("utf-8", errors="replace")), url)


def html_requisites(body: bytes, url: str, content_type: str | None) -> list[str]:
    """The requisites of an HTML page at `url` (see the module docstring for which)."""
    try:
        doc: Any = lxml.html.document_fromstring(decode_html(body, content_type))
    except (etree.ParserError, ValueError):  # an empty or unparseable page needs nothing
        return []
    base = url
    for element in doc.iter("base"):
        if element.get("href"):
            base = urljoin(url, element.get("href", ""))
            break
    found: list[str] = []
    for element in doc.iter(etree.Element):
        tag = element.tag if isinstance(element.tag, str) else ""
        get = element.get
        if tag in ("img", "source"):
            found += [get("src") or "", *_srcset(get("srcset") or "")]
        elif tag == "script":
            found.append(get("src") or "")
        elif tag == "link" and REQUISITE_RELS & set((get("rel") or "").lower().split()):
            found.append(get("href") or "")
        elif tag == "input" and (get("type") or "").lower() == "image":
            found.append(get("src") or "")
        elif tag == "video":
            found.append(get("poster") or "")
        elif tag == "style":
            found += css_urls(element.text or "")
        if get("style"):
            found += css_urls(get("style") or "")
    return _resolved((link for link in found if link and not link.lower().startswith("data:")), base)


def _srcset(srcset: str) -> list[str]:
    return [candidate.split()[0] for candidate in srcset.split(",") if candidate.split()]


def _resolved(links: Iterable[str], base: str) -> list[str]:
    urls = (normalize_url(link, base) for link in links)
    return list(dict.fromkeys(url for url in urls if url is not None))
