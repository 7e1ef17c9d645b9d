"""One HTTP request over the crawl's shared `aiohttp.ClientSession`, turned into data.

The fetcher sends one GET, and only one: not even aiohttp's own re-send of a dropped request (see
`_no_hidden_resend`), so that the engine's retries are all the requests a failing server gets.
Redirects are not followed here: the engine follows them hop by hop so that each hop is scope-checked
and deduplicated. It streams the body and decompresses it itself, so that `max_bytes` counts
decompressed bytes and a gzip bomb never grows memory past that. Every failure becomes a `FetchError`
with a short code that goes into the manifest:

    timeout      no complete response within timeout_s (connect to last byte)
    dns          the host name did not resolve
    connect      the connection was refused, reset or dropped before a response
    tls          TLS handshake or certificate verification failed
    truncated    the body ended before its Content-Length or its compressed stream ended, or the
                 connection broke mid-body
    too_large    the decompressed body passed max_bytes; the body is cut there and may be kept
    encoding     a Content-Encoding we did not ask for and cannot decode, or a corrupt one (deflate is
                 read as zlib-wrapped, as RFC 9110 says, else as raw deflate)
    protocol     the server's answer was not valid HTTP
    http_4xx     status 400-499 (the status itself is kept in the record)
    http_5xx     status 500-599
    invalid_url  aiohttp refused the URL
    blocked_address  the address guard refused every address of the host (`guarded.py`): nothing was
                 sent, and it is not retried, since the same address gets the same answer
    client       any other aiohttp client error
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from crawlpool.exchange import Exchange
from crawlpool.guarded import BlockedAddress

CHUNK_BYTES = 64 * 1024
RETRYABLE_CODES = frozenset({"timeout", "dns", "connect", "truncated"})
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
NO_BODY_STATUSES = frozenset({204, 304})  # and every 1xx
RAW_FALLBACK_BYTES = 64 * 1024  # input kept to decode a deflate body again as raw deflate
ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True, slots=True)
class FetchError:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class Response:
    """What one request produced. `status` is None when no response arrived (`error` says why)."""

    status: int | None
    content_type: str | None
    body: bytes
    location: str | None
    retry_after: str | None
    elapsed_ms: int
    error: FetchError | None
    etag: str | None = None  # the validators a conditional re-fetch (--update) sends back
    last_modified: str | None = None
    exchange: Exchange | None = None  # the request and the raw response, when the crawl archives

    @property
    def sent(self) -> bool:
        """False when no request went out: the address guard refused the host's addresses."""
        return self.error is None or self.error.code != "blocked_address"

    @property
    def retryable(self) -> bool:
        """A transient failure worth another attempt: a retryable status, or a retryable error code
        whatever the status (a 200 whose body stalled or was cut short failed after its status line).
        The engine's retry decision asks only this."""
        if self.status in RETRYABLE_STATUSES:
            return True
        return self.error is not None and self.error.code in RETRYABLE_CODES


# Where a streamed body goes (`Fetcher.fetch(sink=...)`): each chunk in turn; False: stop reading.
Sink = Callable[[bytes], Awaitable[bool]]


class _TooLarge(Exception):
    """Raised inside body reading when max_bytes is passed."""


class Fetcher:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        archive: bool = False,
    ) -> None:
        """`archive`: also keep each exchange as it went over the wire (`Response.exchange`): the
        request's headers, the response's headers as received and its body as sent (still encoded)."""
        self._session = session
        _no_hidden_resend(session)
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._clock = clock
        self._archive = archive

    async def fetch(
        self, url: str, *, sink: Sink | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        """GET `url`, with `headers` added (--update's If-None-Match / If-Modified-Since). With a
        `sink`, a 2xx body is not kept: each decompressed chunk is awaited into the sink as it arrives,
        without the `max_bytes` cut (the sink bounds what it reads), until the sink answers False; the
        response's `body` is then empty."""
        started = self._clock()
        status: int | None = None
        content_type: str | None = None
        location: str | None = None
        retry_after: str | None = None
        etag: str | None = None
        last_modified: str | None = None
        reason = ""
        body = b""  # stays empty unless the whole body (or a too_large prefix) was read
        error: FetchError | None = None
        raw: list[bytes] | None = [] if self._archive else None  # the body as sent, for the archive
        head: _Head | None = None
        sent_at = datetime.now(UTC)
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                self._session.get(
                    url,
                    allow_redirects=False,
                    headers={"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})},
                ) as resp,
            ):
                status, reason = resp.status, resp.reason or ""
                content_type = resp.headers.get("Content-Type")
                location = resp.headers.get("Location")
                retry_after = resp.headers.get("Retry-After")
                etag = resp.headers.get("ETag")
                last_modified = resp.headers.get("Last-Modified")
                streamed = sink is not None and 200 <= status < 300 and body_expected(resp.method, status)
                if raw is not None and not streamed:  # a streamed sitemap is read, not archived
                    head = _Head.of(resp, url, sent_at)
                if streamed:
                    assert sink is not None
                    error = await self._stream_body(resp, sink)
                elif body_expected(resp.method, status) and not (status in REDIRECT_STATUSES and location):
                    body, error = await self._read_body(resp, raw)
                elif raw is not None and body_expected(resp.method, status):
                    # A redirect's body is not used, but an archive keeps what its headers announce.
                    error = await self._read_raw(resp, raw)
        except TimeoutError:
            error = FetchError("timeout", f"no complete response within {self._timeout_s:g} s")
        except aiohttp.ClientError as exc:
            error = classify_client_error(exc)
        except OSError as exc:
            error = FetchError("connect", exc.strerror or type(exc).__name__)
        exchange = None
        if head is not None and raw is not None and status is not None:
            exchange = head.exchange(status, reason, b"".join(raw), _truncation(error))
            if status in REDIRECT_STATUSES and location and error is not None:
                error = None  # a redirect's body was read only for the archive: its failure is no error
        if error is None and status is not None:
            error = http_error(status, reason)
        elapsed_ms = round((self._clock() - started) * 1000)
        if error is not None and error.code == "blocked_address":
            elapsed_ms = 0  # never requested, like a robots or trap record
        return Response(
            status,
            content_type,
            body,
            location,
            retry_after,
            elapsed_ms,
            error,
            etag,
            last_modified,
            exchange,
        )

    async def _read_raw(self, resp: aiohttp.ClientResponse, raw: list[bytes]) -> FetchError | None:
        """Read a body as sent, up to max_bytes, into `raw`; an error when it is cut short."""
        kept = 0
        try:
            async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                raw.append(chunk[: self._max_bytes - kept])
                kept += len(raw[-1])
                if kept >= self._max_bytes:
                    return FetchError("too_large", f"body cut at max_bytes={self._max_bytes}")
        except aiohttp.ClientPayloadError as exc:
            return classify_client_error(exc)
        declared = _content_length(resp)
        if declared is not None and kept < declared:
            return FetchError("truncated", f"body ended after {kept} of {declared} bytes")
        return None

    async def _read_body(
        self, resp: aiohttp.ClientResponse, raw: list[bytes] | None = None
    ) -> tuple[bytes, FetchError | None]:
        """The decompressed body, cut at max_bytes; an error when it is incomplete or too large.
        `raw`, when given, receives the body as sent (an identity body cut at max_bytes too)."""
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            decoder = _decoder(encoding)
        except ValueError:
            return b"", FetchError("encoding", f"unsupported Content-Encoding {encoding!r}")
        declared = _content_length(resp)
        limit = self._max_bytes
        parts: list[bytes] = []
        kept = 0
        raw_bytes = 0
        try:
            async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                raw_bytes += len(chunk)
                if raw is not None:
                    raw.append(chunk if decoder else chunk[: limit - kept])
                data = decoder.feed(chunk, limit - kept + 1) if decoder else chunk
                while True:
                    if kept + len(data) > limit:
                        parts.append(data[: limit - kept])
                        raise _TooLarge
                    parts.append(data)
                    kept += len(data)
                    if decoder is None or not decoder.pending:
                        break
                    data = decoder.feed(b"", limit - kept + 1)
        except _TooLarge:
            return b"".join(parts), FetchError(
                "too_large", f"body cut at max_bytes={limit} after decompression"
            )
        except zlib.error as exc:
            return b"", FetchError("encoding", f"corrupt {encoding} body: {exc}")
        if declared is not None and raw_bytes < declared:
            return b"", FetchError("truncated", f"body ended after {raw_bytes} of {declared} bytes")
        if decoder is not None and not decoder.complete:
            return b"", FetchError("truncated", f"{encoding} stream ended early")
        return b"".join(parts), None

    async def _stream_body(self, resp: aiohttp.ClientResponse, sink: Sink) -> FetchError | None:
        """Feed the decompressed body to `sink` until it ends or the sink wants no more."""
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            decoder = _decoder(encoding)
        except ValueError:
            return FetchError("encoding", f"unsupported Content-Encoding {encoding!r}")
        declared = _content_length(resp)
        raw_bytes = 0
        try:
            async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                raw_bytes += len(chunk)
                data = decoder.feed(chunk, CHUNK_BYTES * 4) if decoder else chunk
                while True:
                    if data and not await sink(data):
                        return None  # the sink has read all it wants: the rest is never downloaded
                    if decoder is None or not decoder.pending:
                        break
                    data = decoder.feed(b"", CHUNK_BYTES * 4)
        except zlib.error as exc:
            return FetchError("encoding", f"corrupt {encoding} body: {exc}")
        if declared is not None and raw_bytes < declared:
            return FetchError("truncated", f"body ended after {raw_bytes} of {declared} bytes")
        if decoder is not None and not decoder.complete:
            return FetchError("truncated", f"{encoding} stream ended early")
        return None


@dataclass(frozen=True, slots=True)
class _Head:
    """What an archive keeps of an exchange besides the body, read while the connection is open."""

    url: str
    sent_at: datetime
    request_target: str
    request_headers: tuple[tuple[str, str], ...]
    http_version: str
    response_headers: tuple[tuple[str, str], ...]
    peer_ip: str | None

    @classmethod
    def of(cls, resp: aiohttp.ClientResponse, url: str, sent_at: datetime) -> _Head:
        info = resp.request_info
        version = resp.version
        return cls(
            url=url,
            sent_at=sent_at,
            request_target=info.url.raw_path_qs or "/",
            request_headers=tuple(info.headers.items()),
            http_version=f"{version.major}.{version.minor}" if version is not None else "1.1",
            # As received: names in their own case, every duplicate kept (latin-1 keeps any byte).
            response_headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers),
            peer_ip=_peer_ip(resp),
        )

    def exchange(self, status: int, reason: str, payload: bytes, truncated: str | None) -> Exchange:
        return Exchange(
            url=self.url,
            started=self.sent_at,
            request_target=self.request_target,
            request_headers=self.request_headers,
            http_version=self.http_version,
            status=status,
            reason=reason,
            response_headers=self.response_headers,
            payload=payload,
            truncated=truncated,
            peer_ip=self.peer_ip,
        )


def _peer_ip(resp: aiohttp.ClientResponse) -> str | None:
    """The address the response came from (WARC-IP-Address), or None when it cannot be told.

    A small body is read with the headers, and aiohttp hands the connection back to its pool at once
    (`resp.connection` is then None); the response keeps its protocol, whose transport is the socket
    while it stays open. aiohttp has no public accessor for it."""
    transport = resp.connection.transport if resp.connection is not None else None
    if transport is None:
        transport = getattr(getattr(resp, "_protocol", None), "transport", None)
    peername = transport.get_extra_info("peername") if transport is not None else None
    return str(peername[0]) if isinstance(peername, tuple) and peername else None


_TRUNCATION = {"too_large": "length", "timeout": "time", "encoding": "unspecified"}


def _truncation(error: FetchError | None) -> str | None:
    """WARC-Truncated for a body that ended with `error` (None: the body is whole)."""
    if error is None:
        return None
    return _TRUNCATION.get(error.code, "disconnect")


class _Decoder:
    """Bounded decompression: never produces more than asked for per call (gzip bombs stay small).

    With `raw_fallback`, a stream that fails before its first output byte (`Content-Encoding: deflate`
    sent without its zlib header, a common server bug) is decoded again from its first byte as raw
    deflate. Until then the input is kept, at most RAW_FALLBACK_BYTES of it."""

    def __init__(self, wbits: int, *, raw_fallback: bool = False) -> None:
        self._wbits = wbits
        self._z = zlib.decompressobj(wbits)
        self._started = False
        self._head: bytes | None = b"" if raw_fallback else None  # input while the fallback is open

    @property
    def pending(self) -> bool:
        return bool(self._z.unconsumed_tail) or (self._z.eof and bool(self._z.unused_data))

    @property
    def complete(self) -> bool:
        return self._z.eof or not self._started

    def feed(self, data: bytes, max_length: int) -> bytes:
        if data:
            self._started = True
        if self._head is not None:
            return self._feed_head(data, max_length)
        if self._z.eof and self._z.unused_data:
            # A new gzip member follows the last one (concatenated gzip is valid).
            data = self._z.unused_data + data
            self._z = zlib.decompressobj(self._wbits)
        else:
            data = self._z.unconsumed_tail + data
        return self._z.decompress(data, max_length)

    def _feed_head(self, data: bytes, max_length: int) -> bytes:
        assert self._head is not None
        self._head += data
        try:
            out = self._z.decompress(self._z.unconsumed_tail + data, max_length)
        except zlib.error:
            head, self._head = self._head, None
            self._wbits = -zlib.MAX_WBITS
            self._z = zlib.decompressobj(self._wbits)
            return self._z.decompress(head, max_length)
        if out or self._z.eof or len(self._head) > RAW_FALLBACK_BYTES:
            self._head = None  # the stream is what its header said
        return out


def _decoder(encoding: str) -> _Decoder | None:
    if encoding in ("identity", ""):
        return None
    if encoding in ("gzip", "x-gzip"):
        return _Decoder(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        # RFC 9110 deflate is zlib-wrapped; 32 + MAX_WBITS also accepts gzip. Raw deflate (no header,
        # a common server bug) is the fallback.
        return _Decoder(32 + zlib.MAX_WBITS, raw_fallback=True)
    raise ValueError(encoding)


def _no_hidden_resend(session: aiohttp.ClientSession) -> None:
    """Make one `fetch` one request on the wire.

    aiohttp re-sends an idempotent request once, silently, when the connection breaks before a
    response (ServerDisconnectedError, ClientOSError; `ClientSession._request`), whether or not the
    connection was a reused one. The engine retries those itself, with backoff and a count, so the
    hidden re-send doubled the requests a failing server got (4 GETs for --retries 1). aiohttp has no
    public switch: `_retry_connection` is the flag its own test client turns off (aiohttp.test_utils).
    The cost: a pooled keep-alive connection that the server closed at the very moment it was reused
    now fails as `connect` and takes one of our retries instead of being re-sent at once."""
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False


def body_expected(method: str, status: int) -> bool:
    """False when the response has no content whatever its headers say (RFC 9110 §6.4.1): an answer
    to HEAD, and 1xx, 204 and 304 answers. Nothing is read then, so nothing can be truncated."""
    return method != "HEAD" and status >= 200 and status not in NO_BODY_STATUSES


def _content_length(resp: aiohttp.ClientResponse) -> int | None:
    value = resp.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def http_error(status: int, reason: str) -> FetchError | None:
    """The error of an HTTP status, or None for a status that is not a failure."""
    if 400 <= status < 500:
        return FetchError("http_4xx", f"{status} {reason}".strip())
    if 500 <= status < 600:
        return FetchError("http_5xx", f"{status} {reason}".strip())
    return None


def classify_client_error(exc: aiohttp.ClientError) -> FetchError:
    """The manifest code for an aiohttp exception."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, BlockedAddress):
        return FetchError("blocked_address", text)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchError("dns", text)
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return FetchError("tls", text)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FetchError("connect", text)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return FetchError("truncated", text)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return FetchError("timeout", text)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        return FetchError("connect", text)
    if isinstance(exc, aiohttp.ClientResponseError):
        return FetchError("protocol", text)
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchError("invalid_url", text)
    return FetchError("client", text)
