"""A deterministic static site for crawl benchmarks: N pages, each ~PAGE_BYTES with ~LINKS links.

Page i links to pages chosen by a fixed linear-congruential walk, so every page is reachable from
page 0 (page i always links to i+1), some links repeat on a page, some point off-site (never
followed with --scope host), and a few use other spellings of the same URL (fragment, `./`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

PAGE_BYTES = 30_000
LINKS = 50


def page_name(i: int) -> str:
    return "index.html" if i == 0 else f"p/{i // 1000}/{i}.html"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--pages", type=int, default=20_000)
    args = parser.parse_args()
    generate(args.root, args.pages)


if __name__ == "__main__":
    main()
