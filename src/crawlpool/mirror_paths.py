"""Where `crawlpool mirror` puts each stored body: a pure function of the records, like `paths.py`.

A mirror name is derived from the body's `pages/` path (see `paths.py`), which is already safe on every
system and injective, with no file another URL's directory. Directories keep their `pages/` names
(`docs@d/` for a directory with a dot, so it never meets a file); only the last component changes:

    HTML (text/html, application/xhtml+xml)     ends in `.html` (or `.htm`), as wget -E names them
        /              pages/H/index.html         → H/index.html
        /about         pages/H/about@             → H/about.html
        /x/index.html  pages/H/x/index.html@      → H/x/index.html   (clashes with /x/: see below)
        /a.php         pages/H/a.php              → H/a.php.html
        /list?page=2   pages/H/list@@qpage=2      → H/list@qpage=2.html
    other bodies keep their name, with a query moved before the extension so the type shows
        /style.css?v=1 pages/H/style.css@qv=1     → H/style@qv=1.css

Clashes. HTML names can meet (`/x/` and `/x/index.html`, `/about` and `/about.html`) and meet other
bodies' names (a text/plain `/about.html`). Records are named in the order of their URLs, as strings:
the first keeps the name, each later one gets `-2`, `-3`, ... before its extension (`about-2.html`).
So `/x/` keeps `x/index.html` and `/x/index.html` becomes `x/index-2.html`. The names of HTML pages
only end in `.html`/`.htm` and hold no `@d`, so they never meet a directory.
"""

from __future__ import annotations

from collections.abc import Iterable

HTML_SUFFIXES = (".html", ".htm")
_QUERY = "@q"


def mirror_name(pages_path: str, html: bool) -> str:
    """The mirror path of a body stored at `pages_path` (`pages/...`), before clashes are resolved."""
    relpath = pages_path.removeprefix("pages/")
    head, _, name = relpath.rpartition("/")
    name = _html_name(name) if html else _other_name(name)
    return f"{head}/{name}" if head else name


def _html_name(name: str) -> str:
    base, query = _split_query(name)
    base = base.removesuffix("@")  # the "no dot" marker of `about@` and `index.html@`
    ext = next((base[-len(s) :] for s in HTML_SUFFIXES if base.lower().endswith(s)), "")
    if not ext:
        base, ext = base + ".html", ".html"
    stem = base[: -len(ext)]
    return f"{stem}{_QUERY}{query}{ext}" if query else f"{stem}{ext}"


def _other_name(name: str) -> str:
    base, query = _split_query(name)
    if not query:
        return name
    stem, dot, ext = base.rpartition(".")
    if not dot or base.endswith("@") or not stem:
        return name
    return f"{stem}{_QUERY}{query}.{ext}"


def _split_query(name: str) -> tuple[str, str]:
    """(name without its query marker, the query). A shortened name (`@h` + hash) is left whole."""
    if "@h" in name:
        return name, ""
    base, marker, query = name.partition(_QUERY)
    return (base, query) if marker else (name, "")


def assign_names(bodies: Iterable[tuple[str, str, bool]]) -> dict[str, str]:
    """Mirror paths for `(url, pages_path, html)` triples, clashes resolved as the docstring says."""
    taken: set[str] = set()
    names: dict[str, str] = {}
    for url, pages_path, html in sorted(bodies):
        wanted = mirror_name(pages_path, html)
        name, n = wanted, 1
        while name in taken:
            n += 1
            name = _numbered(wanted, n)
        taken.add(name)
        names[url] = name
    return names


def _numbered(path: str, n: int) -> str:
    head, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    numbered = f"{stem}-{n}.{ext}" if dot and stem else f"{name}-{n}"
    return f"{head}{slash}{numbered}"
