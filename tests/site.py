"""A small website with a known link graph, served by aiohttp.web on 127.0.0.1 for end-to-end tests.

    /                 → /a.html (in four spellings), /b/, /x, /x/, /x/y, /q?b=2&a=1 and /q?a=1&b=2,
                        /img.png, /notes.txt, /missing, /error, /old, /moved, /gz.html, /private,
                        /truncated, plus off-site, mailto: and javascript: links
    /a.html           → /  (a cycle)
    /b/               → /b/c.html, ../  ;  /b/c.html → /b/ (a cycle)
    /old              301 → /a.html (already seen)      /moved  302 → /new.html
    /gz.html          gzip-encoded HTML → /from-gzip.html
    /notes.txt        text/plain that looks like HTML (its link must not be followed)
    /private          403 unless the request has the header X-Test-Token: let-me-in
    /truncated        promises 1000 bytes, sends 10 and closes the connection
    /missing 404, /error 500
Every request is logged as (path, headers) in `app[REQUEST_LOG]`.
"""

from __future__ import annotations

import gzip

from aiohttp import web

REQUEST_LOG: web.AppKey[list[tuple[str, dict[str, str]]]] = web.AppKey("request_log", list)
TOKEN_HEADER, TOKEN = "X-Test-Token", "let-me-in"


def _html(*hrefs: str, title: str = "page") -> str:
    links = "".join(f'<a href="{h}">{h}</a>\n' for h in hrefs)
    return f"<!doctype html><html><head><title>{title}</title></head><body>{links}</body></html>"


PAGES: dict[str, str] = {
    "/": _html(
        "/a.html",
        "a.html#top",
        "/./a.html",
        "/b/../a.html",
        "/b/",
        "/x",
        "/x/",
        "/x/y",
        "/q?b=2&a=1",
        "/q?a=1&b=2",
        "/img.png",
        "/notes.txt",
        "/missing",
        "/error",
        "/old",
        "/moved",
        "/gz.html",
        "/private",
        "/truncated",
        "http://offsite.invalid/page.html",
        "mailto:someone@example.com",
        "javascript:void(0)",
        title="home",
    ),
    "/a.html": _html("/"),
    "/b/": _html("c.html", "../"),
    "/b/c.html": _html("/b/"),
    "/x": _html(),
    "/x/": _html(),
    "/x/y": _html(),
    "/q": _html(),
    "/new.html": _html(),
    "/from-gzip.html": _html(),
    "/private": _html(title="secret"),
}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
NOTES = '<a href="/never-followed">this is text, not HTML</a>'
GZ_PAGE = _html("/from-gzip.html", title="gzipped")

# Every URL the crawl should try, with (status, error code or None, stored?).
EXPECTED: dict[str, tuple[int | None, str | None, bool]] = {
    "/": (200, None, True),
    "/a.html": (200, None, True),
    "/b/": (200, None, True),
    "/b/c.html": (200, None, True),
    "/x": (200, None, True),
    "/x/": (200, None, True),
    "/x/y": (200, None, True),
    "/q?a=1&b=2": (200, None, True),
    "/img.png": (200, None, True),
    "/notes.txt": (200, None, True),
    "/missing": (404, "http_4xx", False),
    "/error": (500, "http_5xx", False),
    "/old": (301, None, False),
    "/moved": (302, None, False),
    "/new.html": (200, None, True),
    "/gz.html": (200, None, True),
    "/from-gzip.html": (200, None, True),
    "/private": (200, None, True),
    "/truncated": (200, "truncated", False),
}


async def _handle(request: web.Request) -> web.StreamResponse:
    request.app[REQUEST_LOG].append((request.path_qs, dict(request.headers)))
    path = request.path
    if path == "/private" and request.headers.get(TOKEN_HEADER) != TOKEN:
        return web.Response(status=403, text="forbidden")
    if path in PAGES:
        return web.Response(text=PAGES[path], content_type="text/html")
    if path == "/img.png":
        return web.Response(body=PNG, content_type="image/png")
    if path == "/notes.txt":
        return web.Response(text=NOTES, content_type="text/plain")
    if path == "/error":
        return web.Response(status=500, text="boom")
    if path == "/old":
        raise web.HTTPMovedPermanently("/a.html")
    if path == "/moved":
        raise web.HTTPFound("/new.html")
    if path == "/gz.html":
        return web.Response(
            body=gzip.compress(GZ_PAGE.encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/html; charset=utf-8"},
        )
    if path == "/truncated":
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"<html>0123")
        assert request.transport is not None
        request.transport.close()
        return response
    return web.Response(status=404, text="not found")


def make_app() -> web.Application:
    app = web.Application()
    app[REQUEST_LOG] = []
    app.router.add_route("GET", "/{tail:.*}", _handle)
    return app
