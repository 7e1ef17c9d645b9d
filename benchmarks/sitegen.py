"""A deterministic static site for crawl benchmarks: N pages, each ~PAGE_BYTES with ~LINKS links.

Page i links to pages chosen by a fixed linear-congruential walk, so every page is reachable from
page 0 (page i always links to i+1), some links repeat on a page, some point off-site (never
followed with --scope host), and a few use other spellings of the same URL (fragment, `./`).

    python -m benchmarks.sitegen DIR --pages 2000     # write a site into DIR
    python -m benchmarks.sitegen --cached --pages 2000  # print the cached site's directory, made if absent

`cached_site` keeps each generated site under a cache directory keyed by its parameters and by this
file's own contents, so a rerun reuses it and a change to the generator makes a new one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

PAGE_BYTES = 30_000
LINKS = 50
CACHE_ENV = "CRAWLPOOL_BENCH_CACHE"
_COMPLETE = ".complete"


def page_name(i: int) -> str:
    return "index.html" if i == 0 else f"p/{i // 1000}/{i}.html"


def page_urls(base: str, n: int) -> list[str]:
    """The site's N page URLs as a crawler finds them: `base/` for page 0, `base/p/...` for the rest."""
    return [base + "/"] + [f"{base}/{page_name(i)}" for i in range(1, n)]


def render_page(i: int, n: int, page_bytes: int = PAGE_BYTES, links: int = LINKS) -> str:
    targets = [(i + 1) % n]
    x = i
    for _ in range(links - 1):
        x = (x * 1103515245 + 12345) % (2**31)
        targets.append(x % n)
    hrefs = []
    for k, t in enumerate(targets):
        href = "/" if t == 0 else "/" + page_name(t)
        if k % 10 == 3:
            href += "#section"  # another spelling of the same URL
        elif k % 10 == 7:
            href = "http://offsite.invalid/" + page_name(t)  # out of scope
        hrefs.append(href)
    body = "".join(f'<li><a href="{h}">link {k}</a></li>\n' for k, h in enumerate(hrefs))
    head = f"<!doctype html><html><head><title>page {i}</title></head><body><h1>page {i}</h1><ul>\n"
    tail = "</ul></body></html>\n"
    filler_len = max(0, page_bytes - len(head) - len(body) - len(tail) - 20)
    filler = f"<p>{('lorem ipsum dolor sit amet ' * (filler_len // 27 + 1))[:filler_len]}</p>\n"
    return head + body + filler + tail


def generate(root: Path, n: int, page_bytes: int = PAGE_BYTES, links: int = LINKS) -> None:
    for i in range(n):
        path = root / page_name(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_page(i, n, page_bytes, links), encoding="utf-8")


def default_cache_dir() -> Path:
    """`$CRAWLPOOL_BENCH_CACHE`, else `crawlpool-bench` in the system temp directory."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "crawlpool-bench")


def cached_site(
    n: int, cache_dir: Path | None = None, page_bytes: int = PAGE_BYTES, links: int = LINKS
) -> tuple[Path, bool]:
    """The directory of the site with these parameters, generated unless already cached.

    Returns (directory, reused). A site is generated into a scratch directory and renamed into place
    once whole, so an interrupted run never leaves a half site that a later run would trust."""
    cache = cache_dir or default_cache_dir()
    generator = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    root = cache / f"site-{n}p-{page_bytes}b-{links}l-{generator}"
    if (root / _COMPLETE).exists():
        return root, True
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache))
    try:
        generate(scratch, n, page_bytes, links)
        (scratch / _COMPLETE).touch()
        if root.exists():  # a half site from an older layout, without the marker
            shutil.rmtree(root)
        scratch.rename(root)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    return root, False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, nargs="?", help="write the site here (omit with --cached)")
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--cached", action="store_true", help="use the cache directory; print its path")
    args = parser.parse_args()
    if args.cached:
        print(cached_site(args.pages)[0])
    elif args.root is None:
        parser.error("give a directory, or --cached")
    else:
        generate(args.root, args.pages)


if __name__ == "__main__":
    main()
