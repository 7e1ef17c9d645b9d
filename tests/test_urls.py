"""URL normalization: examples for every rule, and properties over generated URLs."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote_to_bytes, urlsplit

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from crawlpool import urls
from crawlpool.urls import fingerprint, host_key, normalize_url, url_host

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# (input, expected) with no base.
NORMALIZE = {
    # scheme and host are lowercased; the path and query never are
    "case": (
        "HTTP://Example.COM/CamelCase/File.HTML?Q=Value",
        "http://example.com/CamelCase/File.HTML?Q=Value",
    ),
    "case https": ("hTTpS://WWW.Example.Com/", "https://www.example.com/"),
    # IDNA
    "idna": ("http://Bücher.de/", "http://xn--bcher-kva.de/"),
    "idna upper": ("http://MÜNCHEN.DE/", "http://xn--mnchen-3ya.de/"),
    "idna cjk": ("https://例え.テスト/", "https://xn--r8jz45g.xn--zckzah/"),
    "idna ideographic dot": ("http://bücher。de/", "http://xn--bcher-kva.de/"),
    "idna already punycode": ("http://XN--BCHER-KVA.de/", "http://xn--bcher-kva.de/"),
    "idna 2003 sharp s": ("http://faß.de/", "http://fass.de/"),
    "idna label too long": ("http://" + "ü" * 64 + ".de/", None),
    "host escapes": ("http://ex%41mple.com/", "http://example.com/"),
    "host bad escape": ("http://ex%ffample.com/", None),
    # host syntax
    "underscore host": ("http://a_b.example.com/", "http://a_b.example.com/"),
    "trailing dot kept": ("http://example.com./", "http://example.com./"),
    "empty label": ("http://a..b/", None),
    "leading dot": ("http://.a.com/", None),
    "space in host": ("http://a b.com/", None),
    "backslash in host": ("http://a.com\\evil.com/", None),
    "ipv4": ("http://127.0.0.1:8000/x", "http://127.0.0.1:8000/x"),
    # IPv6
    "ipv6 port": ("http://[::1]:8080/", "http://[::1]:8080/"),
    "ipv6 no path": ("http://[::1]:8080", "http://[::1]:8080/"),
    "ipv6 default port": ("http://[::1]:80/", "http://[::1]/"),
    "ipv6 compressed": ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
    "ipv6 upper": ("http://[FE80::AB]/", "http://[fe80::ab]/"),
    "ipv6 unclosed": ("http://[::1/", None),
    "ipv6 bad": ("http://[::g]/", None),
    "ipv6 zone": ("http://[fe80::1%25eth0]/", None),
    "ipv4 in brackets": ("http://[1.2.3.4]/", None),
    "ipv6 junk after": ("http://[::1]x/", None),
    "ipv6 unbracketed": ("http://::1/", None),
    # ports
    "http default port": ("http://a.com:80/", "http://a.com/"),
    "https default port": ("https://a.com:443/x", "https://a.com/x"),
    "http on 443": ("http://a.com:443/", "http://a.com:443/"),
    "https on 80": ("https://a.com:80/", "https://a.com:80/"),
    "leading zeros": ("http://a.com:0080/", "http://a.com/"),
    "other port": ("http://a.com:8080/", "http://a.com:8080/"),
    "empty port": ("http://a.com:/x", "http://a.com/x"),
    "port too big": ("http://a.com:65536/", None),
    "port max": ("http://a.com:65535/", "http://a.com:65535/"),
    "port zero": ("http://a.com:0/", None),
    "port negative": ("http://a.com:-1/", None),
    "port letters": ("http://a.com:8o/", None),
    "port non-ascii digits": ("http://a.com:\u0668\u0660/", None),
    "two ports": ("http://a.com:80:80/", None),
    # path: empty, dot segments
    "empty path": ("http://a.com", "http://a.com/"),
    "empty path with query": ("http://a.com?x=1", "http://a.com/?x=1"),
    "dot segments": ("http://a.com/a/./b/../c", "http://a.com/a/c"),
    "dot dot above root": ("http://a.com/../../x", "http://a.com/x"),
    "trailing dot dot": ("http://a.com/a/b/..", "http://a.com/a/"),
    "trailing dot": ("http://a.com/a/b/.", "http://a.com/a/b/"),
    "encoded dots": ("http://a.com/a/%2e%2E/b/%2E", "http://a.com/b/"),
    "dots in names": ("http://a.com/.well-known/a..b/.c", "http://a.com/.well-known/a..b/.c"),
    "double slash kept": ("http://a.com//x//y", "http://a.com//x//y"),
    "dots in query kept": ("http://a.com/?p=/a/../b", "http://a.com/?p=/a/../b"),
    # percent-encoding
    "unreserved decoded": ("http://a.com/%7Euser/%41%62%2D%2e%5F", "http://a.com/~user/Ab-._"),
    "lowercase hex upper": ("http://a.com/%e2%82%ac", "http://a.com/%E2%82%AC"),
    "%2F kept": ("http://a.com/a%2Fb", "http://a.com/a%2Fb"),
    "%2f uppercased": ("http://a.com/a%2fb", "http://a.com/a%2Fb"),
    "%25 kept": ("http://a.com/100%25", "http://a.com/100%25"),
    "%25 then unreserved": ("http://a.com/%25%32%46", "http://a.com/%252F"),
    "lone percent": ("http://a.com/100%", "http://a.com/100%25"),
    "bad escape": ("http://a.com/%zz%4", "http://a.com/%25zz%254"),
    "space": ("http://a.com/a b?q=c d", "http://a.com/a%20b?q=c%20d"),
    "non-ascii": ("http://a.com/é?q=中", "http://a.com/%C3%A9?q=%E4%B8%AD"),
    "unsafe ascii": ('http://a.com/"<>\\^`{|}', "http://a.com/%22%3C%3E%5C%5E%60%7B%7C%7D"),
    "sub-delims raw": ("http://a.com/!$&'()*+,;=:@[]", "http://a.com/!$&'()*+,;=:@[]"),
    "lone surrogate": ("http://a.com/\ud800", None),
    # query
    "sort": ("http://a.com/?b=1&a=2", "http://a.com/?a=2&b=1"),
    "sort stable": ("http://a.com/?a=2&a=1", "http://a.com/?a=2&a=1"),
    "sort stable mixed": ("http://a.com/?b=1&a=2&c&a=1", "http://a.com/?a=2&a=1&b=1&c"),
    "sort by code point": ("http://a.com/?q=a&Q=A", "http://a.com/?Q=A&q=a"),
    "empty params dropped": ("http://a.com/?&a=1&&b=2&", "http://a.com/?a=1&b=2"),
    "empty query dropped": ("http://a.com/x?", "http://a.com/x"),
    "only ampersands": ("http://a.com/x?&&", "http://a.com/x"),
    "empty key kept": ("http://a.com/x?=", "http://a.com/x?="),
    "plus kept": ("http://a.com/?q=a+b&r=%2B", "http://a.com/?q=a+b&r=%2B"),
    "query delimiters kept": ("http://a.com/?a=%26%3d&b=%23", "http://a.com/?a=%26%3D&b=%23"),
    "question mark in query": ("http://a.com/?a=?b", "http://a.com/?a=?b"),
    "query unreserved decoded": ("http://a.com/?%61=%7e", "http://a.com/?a=~"),
    # fragment
    "fragment": ("http://a.com/x#frag", "http://a.com/x"),
    "empty fragment": ("http://a.com/x#", "http://a.com/x"),
    "fragment with query chars": ("http://a.com/x?q=1#f?g=2&a", "http://a.com/x?q=1"),
    "fragment before query": ("http://a.com/x#f?q=1", "http://a.com/x"),
    # whitespace and controls
    "surrounding whitespace": ("  \n http://a.com/x \t\r\n", "http://a.com/x"),
    "surrounding controls": ("\x00http://a.com/\x1f", "http://a.com/"),
    "tab and newline inside": ("ht\ttp://a.\ncom/a\tb\nc\r", "http://a.com/abc"),
    "control inside": ("http://a.com/a\x00b", None),
    "del inside": ("http://a.com/a\x7fb", None),
    "nbsp is not whitespace": ("http://a.com/a\xa0", "http://a.com/a%C2%A0"),
    # userinfo is kept as written
    "userinfo": ("http://User:Pa%7eSS@A.com/", "http://User:Pa%7eSS@a.com/"),
    "userinfo unsafe": ("http://u ser@a.com/", "http://u%20ser@a.com/"),
    "userinfo at encoded": ("http://a@b@c.com/", "http://a%40b@c.com/"),
    "userinfo brackets encoded": ("http://[::1]@c.com/", "http://%5B::1%5D@c.com/"),
    "empty userinfo": ("http://@a.com/", "http://a.com/"),
    "empty user and password": ("http://:@a.com/", "http://a.com/"),
    # not http(s), or no host
    "mailto": ("mailto:someone@example.com", None),
    "javascript": ("javascript:void(0)", None),
    "file": ("file:///etc/passwd", None),
    "ftp": ("ftp://a.com/", None),
    "data": ("data:text/html,hi", None),
    "ws": ("ws://a.com/", None),
    "no authority": ("http:a.com", None),
    "no authority slash": ("http:/a.com/", None),
    "empty host": ("http:///x", None),
    "only port": ("http://:80/", None),
    "only scheme": ("http://", None),
    "empty": ("", None),
    # relative without base
    "relative": ("x/y", None),
    "absolute path": ("/x", None),
    "scheme-relative": ("//a.com/x", None),
    "query only": ("?q=1", None),
    "fragment only": ("#top", None),
    "not a scheme": ("localhost:8080/x", None),
}


@pytest.mark.parametrize(("url", "expected"), NORMALIZE.values(), ids=NORMALIZE.keys())
def test_normalize(url: str, expected: str | None) -> None:
    assert normalize_url(url) == expected


def test_reserved_escapes_keep_meaning() -> None:
    assert normalize_url("http://a.com/a%2Fb") != normalize_url("http://a.com/a/b")
    assert normalize_url("http://a.com/?a=1%26b%3D2") != normalize_url("http://a.com/?a=1&b=2")
    assert normalize_url("http://a.com/?q=a%2Bb") != normalize_url("http://a.com/?q=a+b")
    assert normalize_url("http://a.com/%2525") != normalize_url("http://a.com/%25")


# RFC 3986 5.4, with the fragment dropped, and `g:h` and `http:g` refused (not http(s) URLs with a host).
RFC_BASE = "http://a/b/c/d;p?q"
RFC_EXAMPLES = {
    "g:h": None,
    "g": "http://a/b/c/g",
    "./g": "http://a/b/c/g",
    "g/": "http://a/b/c/g/",
    "/g": "http://a/g",
    "//g": "http://g/",
    "?y": "http://a/b/c/d;p?y",
    "g?y": "http://a/b/c/g?y",
    "#s": "http://a/b/c/d;p?q",
    "g#s": "http://a/b/c/g",
    "g?y#s": "http://a/b/c/g?y",
    ";x": "http://a/b/c/;x",
    "g;x": "http://a/b/c/g;x",
    "g;x?y#s": "http://a/b/c/g;x?y",
    "": "http://a/b/c/d;p?q",
    ".": "http://a/b/c/",
    "./": "http://a/b/c/",
    "..": "http://a/b/",
    "../": "http://a/b/",
    "../g": "http://a/b/g",
    "../..": "http://a/",
    "../../": "http://a/",
    "../../g": "http://a/g",
    "../../../g": "http://a/g",
    "../../../../g": "http://a/g",
    "/./g": "http://a/g",
    "/../g": "http://a/g",
    "g.": "http://a/b/c/g.",
    ".g": "http://a/b/c/.g",
    "g..": "http://a/b/c/g..",
    "..g": "http://a/b/c/..g",
    "./../g": "http://a/b/g",
    "./g/.": "http://a/b/c/g/",
    "g/./h": "http://a/b/c/g/h",
    "g/../h": "http://a/b/c/h",
    "g;x=1/./y": "http://a/b/c/g;x=1/y",
    "g;x=1/../y": "http://a/b/c/y",
    "g?y/./x": "http://a/b/c/g?y/./x",
    "g?y/../x": "http://a/b/c/g?y/../x",
    "g#s/./x": "http://a/b/c/g",
    "g#s/../x": "http://a/b/c/g",
    "http:g": None,
}


@pytest.mark.parametrize(("ref", "expected"), RFC_EXAMPLES.items(), ids=repr)
def test_resolve_rfc3986_examples(ref: str, expected: str | None) -> None:
    assert normalize_url(ref, RFC_BASE) == expected


@pytest.mark.parametrize(
    ("ref", "base", "expected"),
    [
        ("//cdn.example.com/x.js", "https://a.com/p", "https://cdn.example.com/x.js"),
        ("//cdn.example.com/x.js", "http://a.com/p", "http://cdn.example.com/x.js"),
        ("x", "HTTP://A.com:80/d/p#f", "http://a.com/d/x"),
        ("x", "http://u:p@a.com:8080/d/", "http://u:p@a.com:8080/d/x"),
        ("/x", "http://[::1]:8080/d", "http://[::1]:8080/x"),
        (" ../x y\n", "http://a.com/d/e/", "http://a.com/d/x%20y"),
        ("?b=1&a=2", "http://a.com/p?z=0", "http://a.com/p?a=2&b=1"),
        ("https://other.com/Y", "http://a.com/", "https://other.com/Y"),
        ("https://other.com/Y", "not a url", "https://other.com/Y"),
        ("x", "not a url", None),
        ("x", "mailto:a@b.c", None),
        ("x", "", None),
        ("mailto:a@b.c", "http://a.com/", None),
        ("javascript:void(0)", "http://a.com/", None),
    ],
)
def test_resolve(ref: str, base: str, expected: str | None) -> None:
    assert normalize_url(ref, base) == expected


def test_fingerprint() -> None:
    # Pinned: stored seen-sets depend on this exact value.
    assert fingerprint("https://example.com/") == -7343861343478622117
    assert fingerprint("https://example.com/") == fingerprint("https://example.com/")
    assert fingerprint("https://example.com/a") != fingerprint("https://example.com/b")
    values = [fingerprint(f"https://example.com/{i}") for i in range(200)]
    assert all(INT64_MIN <= v <= INT64_MAX for v in values)
    assert min(values) < 0 < max(values)  # the whole signed range is used


@pytest.mark.parametrize(
    ("url", "key", "host"),
    [
        ("https://example.com/", "https://example.com:443", "example.com"),
        ("http://example.com/x?y", "http://example.com:80", "example.com"),
        ("http://example.com:8080/", "http://example.com:8080", "example.com"),
        ("https://example.com:80/", "https://example.com:80", "example.com"),
        ("http://u:p@example.com/", "http://example.com:80", "example.com"),
        ("http://u:p@example.com:81/", "http://example.com:81", "example.com"),
        ("http://a%40b@example.com/", "http://example.com:80", "example.com"),
        ("http://[::1]/", "http://[::1]:80", "::1"),
        ("http://[::1]:8080/", "http://[::1]:8080", "::1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000", "127.0.0.1"),
        ("http://xn--bcher-kva.de/", "http://xn--bcher-kva.de:80", "xn--bcher-kva.de"),
    ],
)
def test_host_key_and_url_host(url: str, key: str, host: str) -> None:
    assert normalize_url(url) == url
    assert host_key(url) == key
    assert url_host(url) == host


# --- properties -------------------------------------------------------------------------------

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# Characters that must be encoded or have special meaning, plus non-ASCII of 2, 3 and 4 UTF-8 bytes.
ODD = " \"<>\\^`{|}!$'()*+,;:@[]é中😀\xa0"
ESCAPES = ["%2F", "%2f", "%25", "%41", "%7e", "%2E", "%C3%A9", "%e2%82%ac", "%26", "%3D", "%2B", "%23"]

# Tokens of a path segment or query part: one character, or one whole escape. Variants re-spell
# only single unreserved characters (as escapes) and escapes (in another hex case).
path_token = st.sampled_from(list(UNRESERVED)) | st.sampled_from(list(ODD + "=&")) | st.sampled_from(ESCAPES)
query_token = st.sampled_from(list(UNRESERVED)) | st.sampled_from(list(ODD + "?/")) | st.sampled_from(ESCAPES)
ascii_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
hosts = st.lists(ascii_label, min_size=1, max_size=3).map(".".join) | st.sampled_from(
    ["bücher.de", "例え.テスト", "münchen.de", "127.0.0.1", "[::1]", "[2001:db8::1]"]
)


class Parts(NamedTuple):
    scheme: str
    host: str
    port: int | None
    segments: list[list[str]]  # tokens of each path segment
    params: list[tuple[str, list[str] | None]]  # key, tokens of the value (None: no "=")


url_parts = st.builds(
    Parts,
    st.sampled_from(["http", "https"]),
    hosts,
    st.none() | st.integers(1, 65535),
    st.lists(st.lists(path_token, max_size=4), max_size=4),
    st.lists(
        st.tuples(ascii_label, st.none() | st.lists(query_token, max_size=4)),
        max_size=4,
        unique_by=lambda kv: kv[0],  # reordering keeps the meaning only for distinct keys
    ),
)


def _spell(draw: st.DrawFn, token: str, vary: bool) -> str:
    if not vary:
        return token
    if token in UNRESERVED and draw(st.booleans()):
        escape = f"%{ord(token):02x}"
        return escape.upper() if draw(st.booleans()) else escape
    if token.startswith("%"):
        return token.lower() if draw(st.booleans()) else token.upper()
    return token


def _random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(text, flips, strict=True))


def _build(draw: st.DrawFn, parts: Parts, vary: bool) -> str:
    """One spelling of `parts`: the plain one, or (vary=True) a randomly re-spelled equivalent."""
    scheme, host, port = parts.scheme, parts.host, parts.port
    path = ["".join(_spell(draw, t, vary) for t in segment) for segment in parts.segments]
    params = [
        (
            "".join(_spell(draw, c, vary) for c in key),
            None if value is None else "".join(_spell(draw, t, vary) for t in value),
        )
        for key, value in parts.params
    ]
    fragment = ""
    if vary:
        scheme = _random_case(draw, scheme)
        if host.isascii():
            host = _random_case(draw, host)
        elif draw(st.booleans()):
            host = host.encode("idna").decode()
        if port is None and draw(st.booleans()):
            port = 80 if scheme.lower() == "http" else 443
        # Dot segments that cancel out, inserted before a real segment (at the end they would
        # turn "/a" into "/a/").
        for i in sorted(draw(st.lists(st.integers(0, max(len(path) - 1, 0)), max_size=3)), reverse=True):
            if i < len(path):
                path[i:i] = draw(st.sampled_from([["."], ["x", ".."], [".", "y", ".."]]))
        params = draw(st.permutations(params))
        if draw(st.booleans()) and params:
            params = [*params[:1], ("", None), *params[1:]]  # an empty parameter: "a=1&&b=2"
        if draw(st.booleans()):
            fragment = "#" + draw(st.text(alphabet=UNRESERVED + ODD + "#?/%&=", max_size=8))
    netloc = host if port is None else f"{host}:{'00' * vary}{port}"  # leading zeros
    query = "&".join(k if v is None else f"{k}={v}" for k, v in params)
    body = f"{scheme}://{netloc}/{'/'.join(path)}{'?' + query if query else ''}"
    # Trailing spaces belong to the href, not the URL, and are stripped; unless a fragment follows.
    # Spell them as escapes so that both spellings mean the same.
    kept = body.rstrip(" ")
    url = kept + "%20" * (len(body) - len(kept)) + fragment
    if vary:
        if draw(st.booleans()):
            url = " \n\t" + url + " \r\n"
        if draw(st.booleans()):
            at = draw(st.integers(0, len(url)))
            url = url[:at] + draw(st.sampled_from(["\t", "\n", "\r"])) + url[at:]
    return url


@st.composite
def equivalent_urls(draw: st.DrawFn) -> tuple[str, str]:
    parts = draw(url_parts)
    return _build(draw, parts, vary=False), _build(draw, parts, vary=True)


@given(equivalent_urls())
@example(("http://a.com/", " HTTP://A.COM:80/./#x"))
@example(("http://a.com/%2F", "http://a.com/%2f"))
@example(("http://a.com/?b=1&a=2", "http://a.com/?a=2&&b=1"))
def test_equivalent_spellings_normalize_alike(pair: tuple[str, str]) -> None:
    plain, variant = pair
    normalized = normalize_url(plain)
    assert normalized is not None
    assert normalize_url(variant) == normalized
    assert fingerprint(normalize_url(variant) or "") == fingerprint(normalized)


@st.composite
def urls_and_bases(draw: st.DrawFn) -> tuple[str, str]:
    url = _build(draw, draw(url_parts), vary=False)
    origin_end = url.index("/", url.index("://") + 3)
    return url, url[:origin_end] + draw(st.sampled_from(["/", "/d/e/f", "/d/?q=1"]))


@given(urls_and_bases())
def test_relative_reference_resolves_like_absolute(url_and_base: tuple[str, str]) -> None:
    url, base = url_and_base
    origin_end = url.index("/", url.index("://") + 3)
    if not url[origin_end:].startswith("//"):  # that would be a scheme-relative reference
        assert normalize_url(url[origin_end:], base) == normalize_url(url)
    assert normalize_url(url[url.index("//") :], base) == normalize_url(url)


# Anything goes: odd characters, stray "%", "#" and "?", controls, bad ports and hosts.
chaos_text = st.text(alphabet=UNRESERVED[::7] + ODD + "%/?#.&=\t\n\x00\x7f", max_size=12)
chaos_urls = st.builds(
    "{}{}{}{}{}{}".format,
    st.sampled_from(["http://", "HTTPS://", "hTtP://", "ftp://", "http:", "//", "", " http://"]),
    st.sampled_from(["", "u:p@", "@", "a@b@", "%zz@"]) | chaos_text.map("{}@".format),
    hosts.map(str.upper) | hosts | chaos_text,
    st.sampled_from(["", ":", ":80", ":443", ":0080", ":65536", ":x"]),
    st.sampled_from(["", "/", "/a/../", "/./.", "/%2e%2e/"]),
    chaos_text,
)


@given(st.one_of(chaos_urls, st.text(max_size=40)))
@example("http://a.com/%%41")  # a stray "%" before an escape
@example("http://a.com/%25%32%46")  # decoding "%32%46" must not make "%25" + "2F" an escape
@example("http://a.com/%2e%2E/%2e")  # dot segments appear only after decoding
@example("http://a.com/?&")
@example("http://[::1]:0080")
def test_normalize_is_idempotent(url: str) -> None:
    normalized = normalize_url(url)
    if normalized is None:
        return
    assert normalize_url(normalized) == normalized
    assert normalized.isascii()
    assert not any(c in normalized for c in ' "<>\\^`{|}#\t\n\r\x00\x7f')
    parts = urlsplit(normalized)
    assert parts.scheme in ("http", "https")
    assert parts.hostname == url_host(normalized)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    port = parts.port or (80 if parts.scheme == "http" else 443)
    assert host_key(normalized) == f"{parts.scheme}://{host}:{port}"
    assert INT64_MIN <= fingerprint(normalized) <= INT64_MAX


@given(st.lists(path_token, max_size=12).map("".join))
@example("%%41")
@example("%25%32%46")
def test_escapes_keep_the_path_bytes(segment: str) -> None:
    # Without dot segments, normalizing only re-spells the path: its decoded bytes never change.
    path = "/x" + segment + "/y"  # the ends keep surrounding-space stripping out of the way
    normalized = normalize_url("http://a.com" + path)
    assert normalized is not None
    assert unquote_to_bytes(urlsplit(normalized).path) == unquote_to_bytes(path)


@given(st.text(max_size=30), st.sampled_from(["http://a.com/d/p?q", "https://[::1]:8080/", "bad"]))
def test_normalize_with_base_never_raises(ref: str, base: str) -> None:
    normalized = normalize_url(ref, base)
    assert normalized is None or normalize_url(normalized) == normalized


# URLs that look canonical: what the fast path sees most.
RAW = UNRESERVED + "!$'()*+,;:@[]"
clean_looking_urls = st.builds(
    "{}://{}{}/{}{}".format,
    st.sampled_from(["http", "https"]),
    st.lists(ascii_label, min_size=1, max_size=3).map(".".join),
    st.sampled_from(
        [
            f"{dot}{port}"
            for dot in ("", ".")
            for port in ("", ":80", ":443", ":0", ":08080", ":1", ":8080", ":65535", ":65536", ":123456")
        ]
    ),
    st.text(alphabet=RAW + "/.", max_size=15),
    st.just("")
    | st.lists(st.text(alphabet=RAW + "=/?", max_size=4), max_size=4).map(
        lambda params: "?" + "&".join(params)
    ),
)


@given(clean_looking_urls)
@example("http://a.com/.well-known/x")
@example("http://a.com/x/..")
@example("http://a.com/?b&a")
@example("http://a.com/?a=1&&b")
@example("http://a.com:8080/")
@example("http://a.com:443/")
@example("https://a.com:443/")
@example("http://a.com:65536/")
@example("http://a.com:08080/")
def test_fast_path_agrees_with_slow_path(url: str) -> None:
    # White-box: the fast path may only return URLs that the full rules leave unchanged.
    assert normalize_url(url) == urls._canonicalize(url)


# Root-relative hrefs, clean or not, fragments with odd characters; bases of every shape.
rooted_hrefs = st.builds(
    "/{}{}".format,
    st.text(alphabet=RAW + "/.?&=%# \t\x00", max_size=15),
    st.sampled_from(["", "#", "#x", "#a b", "#\x00", "#\t", " ", "\n"]),
)


@given(
    rooted_hrefs,
    st.sampled_from(
        [
            "http://a.com/d/p?q",
            "https://u:p@a.com:8443/",
            "http://[::1]:8080/x/",
            "http://xn--bcher-kva.de/",
            "bad",
        ]
    ),
)
@example("/a#\x00", "http://a.com/")  # a control in the fragment: no URL, as for an absolute one
@example("/a b", "http://a.com/")
@example("/./a", "http://a.com/")
@example("/?b&a", "http://a.com/")
def test_a_root_relative_href_resolves_like_the_absolute_url(href: str, base: str) -> None:
    """White-box: the fast path for a root-relative href gives what the absolute spelling gives."""
    assume(not href.replace("\t", "").replace("\n", "").startswith("//"))  # scheme-relative then
    parts = urls._base_parts(base)
    absolute = None if parts is None else normalize_url(parts[1] + href)
    assert normalize_url(href, base) == absolute
