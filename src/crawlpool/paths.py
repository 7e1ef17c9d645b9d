"""Where a page's body is stored: normalized URL -> relative path, a mirror like ``wget -r``'s.

`page_path` is a pure function. Its output is a relative POSIX path that always starts with
``pages/`` and is safe on Linux, macOS and Windows: every component is 1..255 bytes of printable
ASCII, never ``.``/``..``, never a Windows reserved device name (CON, PRN, AUX, NUL, COM0-9,
LPT0-9, CONIN$, CONOUT$, with or without an extension), never ends in ``.`` or space, and never
holds ``<>:"/\\|?*`` or a control character.

Theory of operation
-------------------
``@`` is the marker character. A name never holds a literal ``@``: every ``@`` starts a marker.

E(segment), the name of one path segment, rewrites the segment token by token:

* a percent-escape ``%XX`` of an unreserved byte (``A-Za-z0-9-._~``) becomes that character
  (RFC 3986 6.2.2.2 makes the two spellings equivalent);
* any other percent-escape stays ``%XX``, hex in upper case: ``/a%2Fb`` is the one name ``a%2Fb``;
* a raw character in the safe set ``A-Za-z0-9-._~!$&'()+,;=`` stays itself;
* any other raw character (``:``, ``@``, ``*``, ``|``, a ``%`` that starts no escape, non-ASCII)
  becomes ``@XX`` per UTF-8 byte, hex in upper case.

Then two fix-ups: a final ``.`` becomes ``%2E`` (Windows drops trailing dots), and a name whose
stem before the first ``.`` is a reserved device name gets its first letter written ``%XX``.

A path ``/d1/.../dk/last?query`` of ``scheme://userinfo@host:port`` becomes
``pages/HOST/D(d1)/.../D(dk)/F(last)``:

* HOST = E(host) with ``_`` also written ``%5F``, then ``_<port>`` if the URL names a port, then
  ``_http`` for http (https is unmarked), then ``_u`` + E(userinfo), ``_`` escaped, if any.
* D(s) = ``@e`` if s is empty (``//``); else E(s) if it holds no ``.``; else E(s) + ``@d``.
* F(last) = ``index.html`` if last is empty (the path ends in ``/``); else E(last) + ``@`` if
  E(last) holds no ``.`` or is ``index.html``; else E(last). A non-empty query appends ``@q`` +
  Q(query), where Q keeps the safe set, writes every other character as ``%XX`` per UTF-8 byte
  (``%`` itself becomes ``%25``; nothing is decoded) and writes a final ``.`` as ``%2E``.
* A component over 255 bytes becomes its first 200 bytes (never cutting an escape) + ``@h`` +
  the first 32 hex digits of the SHA-256 of the whole component.

Why two URLs never share a file, and no file is another URL's directory
----------------------------------------------------------------------
1. E is injective on segments, up to the RFC equivalence of ``%41`` and ``A``. Its output reads
   back uniquely as safe characters, ``%XX`` (an escape in the URL) and ``@XX`` (a raw
   character), each token from exactly one input token, as ``%`` and ``@`` are never kept
   literally. The fix-ups only write sequences the token rules never emit (``%2E`` and ``%XX`` of
   a letter escape unreserved bytes, which are always decoded) and touch the last and the first
   character, so both can be undone. Q is injective the same way (``%`` becomes ``%25``, so
   ``%2E`` is new there too). Keeping ``%XX`` apart from raw characters matters: yarl keeps
   ``/a%2B`` and ``/a+`` distinct, and RFC 3986 normalization keeps ``/a%21`` and ``/a!`` apart.
2. The host directory is injective: E's output has no ``_``, so the ``_`` suffixes split back
   apart, and a port (digits), ``http`` and ``u...`` cannot be mistaken for one another.
3. A path has one directory per ``/``, so two URLs with one path agree on host and segment count,
   and it is enough that D and F are each injective and that no F value equals a D value. E's
   output never holds ``@`` followed by a lower-case letter or by ``@``, and Q's output no ``@``.
   So D's values are E without ``.``, dotted E + ``@d``, and ``@e``; F's values hold a ``.`` and
   do not end in ``@d`` (``index.html``, dotted E), end in ``@`` (E + ``@``), or hold ``@q``.
   Reading a file name back: split at the first ``@q``; ``index.html`` is the index; a final
   ``@`` is dropped. ``@e@`` (an empty last segment as a file) never arises: that is the index.
4. ``@h`` appears only in hashed names, which end in ``@h`` + 32 hex digits, at a fixed distance
   from the end, so a hashed name equals no unhashed name, nor another hashed one unless 128 bits
   of SHA-256 collide.

Worked examples (``pages/`` left off)::

    https://example.com/                   example.com/index.html
    https://example.com/about              example.com/about@
    https://example.com/about/             example.com/about/index.html
    https://example.com/a.b/c.html         example.com/a.b@d/c.html
    https://example.com/x/index.html       example.com/x/index.html@
    https://example.com/list?page=2        example.com/list@@qpage=2
    https://example.com/?a=1               example.com/index.html@qa=1
    https://example.com/a%2Fb              example.com/a%2Fb@
    https://example.com/a+b vs /a%2Bb      example.com/a+b@ vs example.com/a%2Bb@
    https://example.com/wiki/Help:Intro    example.com/wiki/Help@3AIntro@
    https://example.com/caf%C3%A9.html     example.com/caf%C3%A9.html
    https://example.com/a//b               example.com/a/@e/b@
    https://example.com/con.txt            example.com/%63on.txt
    https://my_host.test/                  my%5Fhost.test/index.html
    http://127.0.0.1:8080/a                127.0.0.1_8080_http/a@
    https://[::1]/                         @5B@3A@3A1@5D/index.html

Known limits: names keep their case, so on a case-insensitive file system (Windows, macOS by
default) ``/A`` and ``/a`` share a file; a very deep URL may exceed an OS limit on path length.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

__all__ = ["page_path"]

_MAX_NAME_BYTES = 255
_HASHED_PREFIX_BYTES = 200
_HASH_HEX_DIGITS = 32

# A percent-escape, or one character outside the safe set A-Za-z0-9 - . _ ~ ! $ & ' ( ) + , ; =
_SEGMENT_TOKEN = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()+,;=]")
_QUERY_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~!$&'()+,;=]")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_RESERVED_STEMS = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789"]
)


def page_path(normalized_url: str) -> str:
    """Return the relative POSIX path, under ``pages/``, where the page at a URL is stored.

    `normalized_url` must be an absolute http(s) URL already normalized by crawlpool. It is not
    normalized again: spellings the normalizer would merge (``%41`` and ``A`` aside) get
    different paths. A fragment is ignored. Raises ValueError for another scheme, a missing or
    malformed host, or a bad port.
    """
    parts = urlsplit(normalized_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {normalized_url!r}")
    userinfo, at, hostport = parts.netloc.rpartition("@")
    # Not parts.hostname: it drops an IPv6 address's brackets, which keep it apart from a name.
    bracketed = hostport.startswith("[")
    host = hostport[: hostport.find("]") + 1] if bracketed else hostport.partition(":")[0]
    if not host or hostport[len(host) : len(host) + 1] not in ("", ":"):
        # urlsplit lets "[::1]x" through; ignoring the "x" would share "[::1]"'s files.
        raise ValueError(f"URL has no valid host: {normalized_url!r}")
    port = parts.port

    host_dir = _escape_host(host)
    if port is not None:
        host_dir += f"_{port}"
    if parts.scheme == "http":
        host_dir += "_http"
    if at:
        host_dir += "_u" + _escape_host(userinfo)

    *dirs, last = (parts.path or "/")[1:].split("/")
    names = [_fit(host_dir)]
    names.extend(_dir_name(segment) for segment in dirs)
    names.append(_file_name(last, parts.query))
    return "pages/" + "/".join(names)


def _dir_name(segment: str) -> str:
    if not segment:
        return "@e"
    name = _escape(segment)
    return _fit(name + "@d" if "." in name else name)


def _file_name(segment: str, query: str) -> str:
    if segment:
        name = _escape(segment)
        if "." not in name or name == "index.html":
            name += "@"
    else:
        name = "index.html"
    if query:
        name += "@q" + _escape_query(query)
    return _fit(name)


def _escape(segment: str) -> str:
    """E: the name of one non-empty path segment (see the module docstring)."""
    return _fix_for_windows(_SEGMENT_TOKEN.sub(_segment_token, segment))


def _escape_host(host: str) -> str:
    # `_` is the host directory's separator; the fix-ups neither add nor need one.
    return _escape(host).replace("_", "%5F")


def _segment_token(match: re.Match[str]) -> str:
    token = match.group()
    if len(token) == 3:  # a percent-escape: the other alternative matches one character
        char = chr(int(token[1:], 16))
        return char if char in _UNRESERVED else token.upper()
    return "".join(f"@{byte:02X}" for byte in token.encode("utf-8", "surrogatepass"))


def _escape_query(query: str) -> str:
    name = _QUERY_UNSAFE.sub(_query_token, query)
    return name[:-1] + "%2E" if name.endswith(".") else name


def _query_token(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))


def _fix_for_windows(name: str) -> str:
    if name.endswith("."):
        name = name[:-1] + "%2E"
    if name.partition(".")[0].upper() in _RESERVED_STEMS:
        name = f"%{ord(name[0]):02X}{name[1:]}"
    return name


def _fit(name: str) -> str:
    # Names are ASCII by construction, so characters are bytes.
    if len(name) <= _MAX_NAME_BYTES:
        return name
    cut = _HASHED_PREFIX_BYTES
    if name[cut - 1] in "%@":  # don't split a three-character escape
        cut -= 1
    elif name[cut - 2] in "%@":
        cut -= 2
    digest = hashlib.sha256(name.encode("ascii")).hexdigest()[:_HASH_HEX_DIGITS]
    return f"{name[:cut]}@h{digest}"
