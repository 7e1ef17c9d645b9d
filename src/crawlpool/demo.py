"""A small demo website on 127.0.0.1, to try crawlpool with no network (examples/notebook.ipynb uses it).

    /                     → /about.html, /articles/, /data.csv, http://elsewhere.invalid/ (off-site)
    /articles/            → /articles/1.html ... /articles/{ARTICLES}.html
    /articles/N.html      → the previous and next article, a tag page, and on some /missing.html (404)
                            or /private/notes.html (robots.txt disallows /private/)
    /tags/T.html          → the articles with tag T
    /robots.txt           Disallow: /private/

`DemoSite.start()` serves it from the running event loop (a notebook's included), on a free port unless
one is given; `python -m crawlpool.demo` serves it until Ctrl-C. It binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import sys
from types import TracebackType

from aiohttp import web

ARTICLES = 20
TAGS = ("python", "crawling", "asyncio")
ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"
CSV = "article,tag\n" + "".join(f"{i},{TAGS[i % len(TAGS)]}\n" for i in range(1, ARTICLES + 1))


def _page(title: str, *hrefs: str) -> str:
    links = "".join(f'<li><a href="{html.escape(href)}">{html.escape(href)}</a></li>\n' for href in hrefs)
    head = f"<!doctype html><html><head><title>{title}</title></head>"
    return f"{head}<body><h1>{title}</h1><ul>\n{links}</ul></body></html>"


def _article(n: int) -> str:
    hrefs = [f"/articles/{n - 1}.html" if n > 1 else "/articles/", f"/tags/{TAGS[n % len(TAGS)]}.html"]
    if n < ARTICLES:
        hrefs.append(f"/articles/{n + 1}.html")
    if n % 7 == 0:
        hrefs.append("/missing.html")  # a broken link: the crawl records a 404
    if n % 10 == 0:
        hrefs.append("/private/notes.html")  # robots.txt says no: recorded, never fetched
    return _page(f"Article {n}", *hrefs)


PAGES: dict[str, str] = {
    "/": _page("Demo site", "/about.html", "/articles/", "/data.csv", "http://elsewhere.invalid/"),
    "/about.html": _page("About", "/"),
    "/articles/": _page("Articles", *(f"/articles/{n}.html" for n in range(1, ARTICLES + 1))),
    **{f"/articles/{n}.html": _article(n) for n in range(1, ARTICLES + 1)},
    **{
        f"/tags/{tag}.html": _page(
            f"Tag {tag}",
            *(f"/articles/{n}.html" for n in range(1, ARTICLES + 1) if TAGS[n % len(TAGS)] == tag),
        )
        for tag in TAGS
    },
    "/private/notes.html": _page("Private"),
}


async def _handle(request: web.Request) -> web.Response:
    if request.path == "/robots.txt":
        return web.Response(text=ROBOTS_TXT)
    if request.path == "/data.csv":
        return web.Response(text=CSV, content_type="text/csv")
    body = PAGES.get(request.path)
    if body is None:
        return web.Response(status=404, text="not found")
    return web.Response(text=body, content_type="text/html")


class DemoSite:
    """The demo site, served on 127.0.0.1 by the running event loop until `close()` (or the end of an
    `async with DemoSite.start() as site:` block)."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"

    @classmethod
    async def start(cls, port: int = 0) -> DemoSite:
        """Serve the site on 127.0.0.1:`port` (0: a free port); `url` is its home page."""
        app = web.Application()
        app.router.add_get("/{tail:.*}", _handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        return cls(runner, runner.addresses[0][1])

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> DemoSite:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def _serve(port: int) -> None:
    async with await DemoSite.start(port) as site:
        sys.stdout.write(f"demo site at {site.url} (Ctrl-C stops it)\n")
        sys.stdout.flush()
        await asyncio.Event().wait()  # serves until cancelled by Ctrl-C


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m crawlpool.demo", description="Serve the demo site.")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default: 8000)")
    args = parser.parse_args()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args.port))
    except OSError as exc:
        sys.exit(f"crawlpool.demo: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")


if __name__ == "__main__":
    main()
