"""URL normalization and fingerprints: pure functions, no I/O.

`normalize_url` turns an href or a seed into one canonical absolute string, so that spellings of
the same resource are fetched once: equal strings give equal `fingerprint`s, and the seen-set holds
fingerprints. Only http and https URLs are kept; anything else normalizes to None.

Rules, in the order they apply:

1. Surrounding C0 controls and spaces are stripped and tab, CR and LF removed anywhere, as browsers
   do. Any other control character (C0 or DEL) makes the URL invalid.
2. A relative URL is resolved against `base` (RFC 3986 5.2): `//host/x`, `/x`, `?q`, `x/y`, `#f`
   and the empty string are relative. Without a usable base it is invalid.
3. Scheme: lowercased; it must be http or https.
4. Userinfo: kept as written, except that characters which may not appear raw are encoded (rule 7,
   plus `@[]`). An empty userinfo (`@` or `:@`) is dropped.
5. Host: lowercased. Escapes are decoded, then a non-ASCII host is IDNA-encoded to punycode with the
   stdlib `idna` codec (IDNA 2003: `ß` becomes `ss`). The result must be dot-separated labels of
   `a-z 0-9 - _` (a trailing dot is kept). IPv4 literals are kept as written; IPv6 literals are
   validated and compressed (`[0:0::1]` -> `[::1]`), and zone ids are refused.
6. Port: ASCII digits in 1-65535 (port 0 cannot be fetched). An empty port (`host:`) means none,
   and the default port (80 for http, 443 for https) is dropped.
7. Path and query escapes: escapes of unreserved characters (`A-Za-z0-9-._~`) are decoded, the hex
   of the others is uppercased, and characters that may not appear raw are encoded: space,
   controls, `"<>\\^`{|}`, non-ASCII (as UTF-8) and a `%` that starts no escape. Reserved escapes
   (`%2F`, `%25`, `%26`, `%3D`, `%2B`, `%23`...) are never decoded, so the meaning never changes;
   the case of the path and query never changes either, and `+` stays `+`.
8. Path: dot segments are removed (RFC 3986 5.2.4; `..` above the root stays at the root; `%2E` is
   a dot once decoded). An empty path becomes `/`.
9. Query: empty parameters (`a=1&&b=2`) are dropped, then parameters are sorted by key with a
   stable sort: `b=1&a=2` -> `a=2&b=1`, while `a=2&a=1` keeps its order. An empty `?` is dropped.
10. The fragment is dropped.

Not done, on purpose: IPv4 shorthand (`0x7f.1`), `\\` read as `/` (it is encoded as `%5C`),
`www.` stripping, index-page or trailing-slash guessing, removal of tracking parameters.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from urllib.parse import unquote

__all__ = ["fingerprint", "host_key", "normalize_url", "url_host"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# Characters kept raw in userinfo, path and query: unreserved, sub-delims, ":@/?" and "[]" (which
# browsers leave raw too). Anything else is percent-encoded; "%" only when it starts no escape.
_RAW_USERINFO = r"A-Za-z0-9\-._~!$&'()*+,;=:"  # no "@" (it ends the userinfo), no "[]"
_RAW = _RAW_USERINFO + r"@/?\[\]"
_HOST_LABELS = r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?"

# Already-canonical URLs, the common case, are returned as they are. This pattern rules out
# uppercase in scheme and host, userinfo, a port with a leading zero, an empty path, "%", an empty
# query and a fragment; the port's range, dot segments and query order are checked in code.
# Path and query, each raw; `_CLEAN_TAIL` is this part alone, for a root-relative href.
_TAIL = rf"(/[{_RAW.replace('?', '')}]*)(?:\?([{_RAW}]+))?"
_CLEAN = re.compile(rf"(https?)://{_HOST_LABELS}(?::([1-9][0-9]{{0,4}}))?{_TAIL}")
# What a root-relative href must be to need no work: the path and query of a URL `_CLEAN` matches.
_CLEAN_TAIL = re.compile(_TAIL)
_HOST_OK = re.compile(_HOST_LABELS)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An escape (to normalize) or a character that may not appear raw (to encode).
_ESCAPE_OR_BAD = re.compile(rf"%[0-9A-Fa-f]{{2}}|[^{_RAW}]")
# Only the characters that may not appear raw (a "%" starting an escape may).
_BAD = re.compile(rf"%(?![0-9A-Fa-f]{{2}})|[^{_RAW}%]")
_BAD_USERINFO = re.compile(rf"%(?![0-9A-Fa-f]{{2}})|[^{_RAW_USERINFO}%]")
_SURROUNDING = "".join(map(chr, range(0x21)))  # WHATWG "C0 control or space"


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute, canonical form of `url`, resolved against `base` when given.

    Returns None when `url` is not an http(s) URL or cannot be parsed (bad port, bad IPv6 literal,
    empty or invalid host, control characters, invalid IDNA), and when it is relative and `base` is
    None or itself invalid. The result is idempotent: normalize_url(result) == result.
    """
    if _is_clean(url):
        return url
    if base is not None and url[:1] == "/" and url[1:2] != "/":
        # Most links of a site are root-relative and clean: joined to the canonical origin of the base,
        # they are canonical. Checked here, before the general steps and without the cache of joined
        # URLs, which a large site's links overflow (then 1.9 us a link, against 0.6-0.7 here).
        tail, _, fragment = url.partition("#")
        if _is_clean_tail(tail) and not (fragment and _CONTROL.search(fragment)):
            parts = _base_parts(base)
            return None if parts is None else parts[1] + tail
    url = url.strip(_SURROUNDING)
    if "\t" in url or "\n" in url or "\r" in url:
        url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    if _CONTROL.search(url):
        return None
    if _SCHEME.match(url):
        return _normalize_absolute(url)
    if base is None:
        return None
    parts = _base_parts(base)
    if parts is None:
        return None
    base_url, origin, directory = parts
    if url.startswith("//"):
        return _normalize_absolute(origin[: origin.index(":") + 1] + url)
    if url.startswith("/"):
        return _normalize_absolute(origin + url)
    if not url or url.startswith("#"):
        return base_url
    if url.startswith("?"):
        return _normalize_absolute(base_url.partition("?")[0] + url)
    return _normalize_absolute(directory + url)


# The same links come back page after page (see _normalize_absolute); a pure function.
@functools.lru_cache(maxsize=16384)
def fingerprint(normalized_url: str) -> int:
    """64-bit fingerprint of a normalized URL: the first 8 bytes of its blake2b digest read as a
    big-endian signed int64, which fits SQLite INTEGER and Redis intsets."""
    digest = hashlib.blake2b(normalized_url.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def host_key(normalized_url: str) -> str:
    """Politeness key of a normalized URL: 'scheme://host:port', the port always explicit, e.g.
    'https://example.com:443' or 'http://[::1]:8080'. Userinfo is left out."""
    scheme, _, rest = normalized_url.partition("://")
    hostport = _netloc(rest).rpartition("@")[2]
    if hostport.endswith("]") or ":" not in hostport:
        return f"{scheme}://{hostport}:{_DEFAULT_PORTS[scheme]}"
    return f"{scheme}://{hostport}"


def url_host(normalized_url: str) -> str:
    """Host of a normalized URL, lowercase punycode without the port: 'example.com', '127.0.0.1',
    and IPv6 without brackets, '::1' (as `ipaddress` and socket functions take it)."""
    hostport = _netloc(normalized_url.partition("://")[2]).rpartition("@")[2]
    if hostport.startswith("["):
        return hostport[1 : hostport.index("]")]
    return hostport.partition(":")[0]


def _netloc(after_scheme: str) -> str:
    # A normalized URL always has a path starting with "/" right after the netloc.
    end = after_scheme.find("/")
    return after_scheme if end < 0 else after_scheme[:end]


def _is_clean(url: str) -> bool:
    """True when `url` is already canonical (a fast check; False only means "not sure")."""
    m = _CLEAN.fullmatch(url)
    if m is None or "/." in m.group(3):
        return False
    port = m.group(2)
    # A site on a non-default port (every local test server) has it in each of its URLs.
    if port is not None and (int(port) > 65535 or int(port) == _DEFAULT_PORTS[m.group(1)]):
        return False
    return _query_is_clean(m.group(4))


def _is_clean_tail(tail: str) -> bool:
    """True when the path and query `tail` (no fragment) need no work: joined to a canonical origin,
    they make a canonical URL."""
    m = _CLEAN_TAIL.fullmatch(tail)
    return m is not None and "/." not in m.group(1) and _query_is_clean(m.group(2))


def _query_is_clean(query: str | None) -> bool:
    if query is None or "&" not in query:
        return True
    params = query.split("&")
    # A stable sort leaves the parameters alone exactly when their keys are already in order.
    return "" not in params and params == sorted(params, key=_query_key)


# Hrefs of one page share one base: parse it once. A pure function, so memoizing it is safe.
@functools.lru_cache(maxsize=256)
def _base_parts(base: str) -> tuple[str, str, str] | None:
    """(normalized base, 'scheme://netloc', base path up to its last '/') or None if invalid."""
    base_url = normalize_url(base)
    if base_url is None:
        return None
    path_start = base_url.index("/", base_url.index("://") + 3)
    path = base_url.partition("?")[0]
    return base_url, base_url[:path_start], path[: path.rindex("/") + 1]


# Pages of a site link to the same URLs over and over (navigation, and every link is seen on many
# pages): remembering the last ones spares the checks that make up most of a link's cost. A pure
# function, so memoizing it is safe; hrefs resolved against a base get here as absolute URLs, so the
# entries are shared by pages whatever their directory.
@functools.lru_cache(maxsize=16384)
def _normalize_absolute(url: str) -> str | None:
    """Canonical form of `url`, which starts with a scheme and is free of controls."""
    url = url.partition("#")[0]  # hrefs often carry one; without it they are often clean
    return url if _is_clean(url) else _canonicalize(url)


def _canonicalize(url: str) -> str | None:
    """The slow path of `_normalize_absolute`, for a URL without its fragment."""
    # Split by hand rather than with urlsplit: it is three times faster, and urlsplit's cache
    # thrashes when every URL is new. The authority ends at the first "/" or "?".
    colon = url.index(":")
    scheme = url[:colon].lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is None:
        return None
    if url[colon + 1 : colon + 3] != "//":
        return None  # "http:x" or "http:/x": no host
    rest, _, query = url[colon + 3 :].partition("?")
    slash = rest.find("/")
    netloc, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    userinfo, _, hostport = netloc.rpartition("@")
    authority = _host_port(hostport, default_port)
    if authority is None:
        return None
    try:
        if userinfo and userinfo != ":":
            authority = f"{_BAD_USERINFO.sub(_encode_match, userinfo)}@{authority}"
        path = _normalize_escapes(path)
        query = _normalize_escapes(query)
    except UnicodeEncodeError:  # lone surrogates have no UTF-8 form
        return None
    if "/." in path:
        path = _remove_dot_segments(path)
    if not path:
        path = "/"
    if not query:
        return f"{scheme}://{authority}{path}"
    if "&" in query:
        params = [p for p in query.split("&") if p]
        params.sort(key=_query_key)
        query = "&".join(params)
        if not query:
            return f"{scheme}://{authority}{path}"
    return f"{scheme}://{authority}{path}?{query}"


def _host_port(hostport: str, default_port: int) -> str | None:
    """Canonical 'host[:port]' or None if the host or port is invalid."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        literal, port = hostport[1:end], hostport[end + 1 :]
        if port and not port.startswith(":"):
            return None
        try:
            host = f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError:
            return None
        if "%" in host:  # a zone id ("%25eth0") means nothing on another machine
            return None
        port = port[1:]
    else:
        name, _, port = hostport.partition(":")
        ascii_host = _ascii_host(name)
        if ascii_host is None:
            return None
        host = ascii_host
    if not port:
        return host
    if not (port.isascii() and port.isdigit()):
        return None
    number = int(port)
    if not 0 < number <= 65535:
        return None
    return host if number == default_port else f"{host}:{number}"


def _ascii_host(host: str) -> str | None:
    if "%" in host:
        try:
            host = unquote(host, errors="strict")
        except UnicodeDecodeError:
            return None
    if not host.isascii():
        return _idna(host)
    host = host.lower()
    return host if _HOST_OK.fullmatch(host) else None


# The idna codec costs ~20 us a host, and the links of an IDN site mostly share a few hosts.
@functools.lru_cache(maxsize=1024)
def _idna(host: str) -> str | None:
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:  # bad labels, lone surrogates
        return None
    return ascii_host if _HOST_OK.fullmatch(ascii_host) else None


def _normalize_escapes(text: str) -> str:
    if not text or ("%" not in text and not _BAD.search(text)):
        return text
    return _ESCAPE_OR_BAD.sub(_normalize_match, text)


def _normalize_match(m: re.Match[str]) -> str:
    token = m.group()
    if len(token) == 3 and token[0] == "%":
        char = chr(int(token[1:], 16))
        return char if char in _UNRESERVED else token.upper()
    return _encode_match(m)


def _encode_match(m: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in m.group().encode())


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path (starting with '/')."""
    segments = path.split("/")
    out: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")  # "/a/b/.." names the directory "/a/", not the file "/a"
    return "/" + "/".join(out)


def _query_key(param: str) -> str:
    return param.partition("=")[0]
