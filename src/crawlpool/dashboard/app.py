"""The dashboard as an `aiohttp.web.Application`: one page, its static files, and a JSON API.

    GET /                  the page (static/index.html); GET /static/{name}: its script and style
    GET /api/status        the overview: state in words, counts, rate, ETA, errors, the chart's history
    GET /api/hosts         ?limit=1..1000 (50) &sort=queued|in_flight|delay|host: the busiest hosts
    GET /api/errors        counts by code (and cause), a few example records each
    GET /api/records       ?url=SUBSTRING &status=N &code=CODE &offset=N &limit=1..500 (50): manifest search
    GET /api/workers       the workers of a Redis crawl
    GET /api/events        Server-Sent Events: one `status` event a second (the page's live updates)

Three middlewares wrap every request, outermost first: `security_headers` (a CSP allowing only this
origin, no framing, no sniffing, no caching of the API), `json_errors` (an error under /api/ is a JSON
object `{"error": ...}` with its status, never an HTML page or a traceback) and `require_token` (when
the dashboard has a token: a request must carry it as `?token=`, an `Authorization: Bearer` header or the
cookie the page sets from its first `?token=` visit; otherwise 401).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from crawlpool.dashboard.source import HOST_SORTS, Source
from crawlpool.records import ERROR_CODES

SOURCE: web.AppKey[Source] = web.AppKey("source", Source)
TOKEN: web.AppKey[str | None] = web.AppKey("token", str)
UPDATE_S: web.AppKey[float] = web.AppKey("update_s", float)
log = logging.getLogger(__name__)
COOKIE = "crawlpool_dashboard"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _secure(response, request)
        raise
    _secure(response, request)
    return response


def _secure(response: web.StreamResponse, request: web.Request) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.text or exc.reason}, status=exc.status)
    except Exception as exc:  # a bug in a view: logged and said in JSON; the crawl goes on
        log.exception("dashboard: %s failed", request.path)
        return web.json_response({"error": f"internal: {type(exc).__name__}: {exc}"}, status=500)


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[TOKEN]
    if token is None:
        return await handler(request)
    given = request.query.get("token") or request.cookies.get(COOKIE) or ""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth.removeprefix("Bearer ")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise web.HTTPUnauthorized(text="a dashboard token is required: open the URL crawlpool printed")
    response = await handler(request)
    if request.query.get("token") and request.path == "/":
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
    return response


def make_app(source: Source, *, token: str | None = None, update_s: float = 1.0) -> web.Application:
    # json_errors inside security_headers, so that its JSON answers get the headers too.
    app = web.Application(middlewares=[security_headers, json_errors, require_token])
    app[SOURCE] = source
    app[TOKEN] = token
    app[UPDATE_S] = update_s
    app.router.add_get("/", _page)
    app.router.add_get("/static/{name}", _static)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/hosts", _hosts)
    app.router.add_get("/api/errors", _errors)
    app.router.add_get("/api/records", _records)
    app.router.add_get("/api/workers", _workers)
    app.router.add_get("/api/events", _events)
    return app


def _asset(name: str) -> bytes:
    return resources.files("crawlpool.dashboard").joinpath("static", name).read_bytes()


async def _page(request: web.Request) -> web.Response:
    return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound(text=f"no such file: {name}")
    return web.Response(body=_asset(name), content_type=STATIC_FILES[name], charset="utf-8")


async def _status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SOURCE].status())


async def _hosts(request: web.Request) -> web.Response:
    limit = _int_param(request, "limit", 50, 1, 1000)
    sort = request.query.get("sort", "queued")
    if sort not in HOST_SORTS:
        raise web.HTTPBadRequest(text=f"sort: {sort!r} is not one of {', '.join(HOST_SORTS)}")
    return web.json_response({"hosts": await request.app[SOURCE].hosts(limit, sort)})


async def _errors(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SOURCE].errors())


async def _records(request: web.Request) -> web.Response:
    code = request.query.get("code", "")
    if code and code not in ERROR_CODES:
        raise web.HTTPBadRequest(
            text=f"code: {code!r} is not an error code ({', '.join(sorted(ERROR_CODES))})"
        )
    status = _int_param(request, "status", None, 100, 599) if request.query.get("status") else None
    index = request.app[SOURCE].manifest()
    result = await asyncio.to_thread(  # a search reads the whole manifest: not on the crawl's loop
        index.search,
        url=request.query.get("url", ""),
        status=status,
        code=code,
        offset=_int_param(request, "offset", 0, 0, 10**9),
        limit=_int_param(request, "limit", 50, 1, 500),
    )
    return web.json_response(result)


async def _workers(request: web.Request) -> web.Response:
    return web.json_response({"workers": await request.app[SOURCE].workers()})


async def _events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    source, update_s = request.app[SOURCE], request.app[UPDATE_S]
    while True:
        data = json.dumps(await source.status(), separators=(",", ":"))
        try:
            await response.write(f"event: status\ndata: {data}\n\n".encode())
        except (ConnectionResetError, RuntimeError):
            break  # the page was closed
        await asyncio.sleep(update_s)
    return response


def _int_param(request: web.Request, name: str, default: Any, low: int, high: int) -> Any:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name}: must be from {low} to {high}, got {value}")
    return value
