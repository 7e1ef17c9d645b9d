from __future__ import annotations

import hashlib
import os.path
from collections.abc import Iterable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawlpool.paths import page_path
from crawlpool.urls import normalize_url

# ---------------------------------------------------------------------------------------------
# Example table: one row per rule.

EXAMPLES = [
    # index files, extensionless names, dotted names
    ("https://example.com/", "pages/example.com/index.html"),
    ("https://example.com", "pages/example.com/index.html"),
    ("https://example.com/about", "pages/example.com/about@"),
    ("https://example.com/about/", "pages/example.com/about/index.html"),
    ("https://example.com/about/team", "pages/example.com/about/team@"),
    ("https://example.com/x/index.html", "pages/example.com/x/index.html@"),
    ("https://example.com/a.html", "pages/example.com/a.html"),
    ("https://example.com/a.b/c.html", "pages/example.com/a.b@d/c.html"),
    ("https://example.com/v1.2/", "pages/example.com/v1.2@d/index.html"),
    ("https://example.com/a//b", "pages/example.com/a/@e/b@"),
    ("https://example.com//", "pages/example.com/@e/index.html"),
    # queries
    ("https://example.com/list?page=2", "pages/example.com/list@@qpage=2"),
    ("https://example.com/?a=1", "pages/example.com/index.html@qa=1"),
    ("https://example.com/a.php?a=1&b=2", "pages/example.com/a.php@qa=1&b=2"),
    ("https://example.com/s?q=a%20b/c:d", "pages/example.com/s@@qq=a%2520b%2Fc%3Ad"),
    ("https://example.com/s?q=.", "pages/example.com/s@@qq=%2E"),
    ("https://example.com/s?q=%40", "pages/example.com/s@@qq=%2540"),
    ("https://example.com/page#frag", "pages/example.com/page@"),
    # escapes in the URL stay escapes; raw characters outside the safe set become @XX
    ("https://example.com/a%2Fb", "pages/example.com/a%2Fb@"),
    ("https://example.com/a%20b", "pages/example.com/a%20b@"),
    ("https://example.com/a%2520b", "pages/example.com/a%2520b@"),
    ("https://example.com/caf%C3%A9.html", "pages/example.com/caf%C3%A9.html"),
    ("https://example.com/a%2fb", "pages/example.com/a%2Fb@"),
    ("https://example.com/%41", "pages/example.com/A@"),
    ("https://example.com/wiki/Help:Intro", "pages/example.com/wiki/Help@3AIntro@"),
    ("https://example.com/a%3Ab", "pages/example.com/a%3Ab@"),
    ("https://example.com/@user", "pages/example.com/@40user@"),
    ("https://example.com/a*b|c", "pages/example.com/a@2Ab@7Cc@"),
    ("https://example.com/a+b", "pages/example.com/a+b@"),
    ("https://example.com/a%2Bb", "pages/example.com/a%2Bb@"),
    ("https://example.com/!$&'()+,;=~-_", "pages/example.com/!$&'()+,;=~-_@"),
    ("https://example.com/a@d/b@q", "pages/example.com/a@40d/b@40q@"),
    ("https://example.com/caf\u00e9", "pages/example.com/caf@C3@A9@"),
    ("https://example.com/a\\b", "pages/example.com/a@5Cb@"),
    ("https://example.com/%00", "pages/example.com/%00@"),
    ("https://example.com/100%", "pages/example.com/100@25@"),
    # dots: never a . or .. component, never a trailing dot
    ("https://example.com/a.", "pages/example.com/a%2E@"),
    ("https://example.com/a./b", "pages/example.com/a%2E/b@"),
    ("https://example.com/%2E%2E/x", "pages/example.com/.%2E@d/x@"),
    ("https://example.com/.hidden", "pages/example.com/.hidden"),
    # Windows reserved device names, any case, with or without an extension
    ("https://example.com/con", "pages/example.com/%63on@"),
    ("https://example.com/CON.txt", "pages/example.com/%43ON.txt"),
    ("https://example.com/aux.tar.gz", "pages/example.com/%61ux.tar.gz"),
    ("https://example.com/Nul/x", "pages/example.com/%4Eul/x@"),
    ("https://example.com/prn.d/x", "pages/example.com/%70rn.d@d/x@"),
    ("https://example.com/com1", "pages/example.com/%63om1@"),
    ("https://example.com/LPT9.html", "pages/example.com/%4CPT9.html"),
    ("https://example.com/conin$", "pages/example.com/%63onin$@"),
    ("https://example.com/com10", "pages/example.com/com10@"),
    ("https://example.com/console", "pages/example.com/console@"),
    ("https://example.com/con.", "pages/example.com/con%2E@"),
    # hosts, ports, schemes
    ("http://example.com/", "pages/example.com_http/index.html"),
    ("https://example.com:8443/", "pages/example.com_8443/index.html"),
    ("http://127.0.0.1:8080/a", "pages/127.0.0.1_8080_http/a@"),
    ("http://example.com:443/", "pages/example.com_443_http/index.html"),
    ("https://my_host.test/", "pages/my%5Fhost.test/index.html"),
    ("https://[::1]/", "pages/@5B@3A@3A1@5D/index.html"),
    ("http://[2001:db8::1]:8080/x", "pages/@5B2001@3Adb8@3A@3A1@5D_8080_http/x@"),
    ("https://con/", "pages/%63on/index.html"),
    ("https://example.com./", "pages/example.com%2E/index.html"),
    ("https://user:pw@example.com/", "pages/example.com_uuser@3Apw/index.html"),
    ("https://@example.com/", "pages/example.com_u/index.html"),
]


@pytest.mark.parametrize(("url", "expected"), EXAMPLES)
def test_page_path_examples(url: str, expected: str) -> None:
    assert page_path(url) == expected
    _assert_safe(expected)


# Groups of URLs that a careless scheme would map to one file, or to a file and a directory.
COLLISION_GROUPS = [
    [
        "https://h/x",
        "https://h/x/",
        "https://h/x/y",
        "https://h/x/index.html",
        "https://h/x/index.html/",
        "https://h/x?a=1",
        "https://h/x/?a=1",
        "https://h/x@",
        "https://h/x%40",
        "https://h/x@d",
        "https://h/x.d/y",
        "https://h/x.d",
    ],
    ["https://h/", "https://h/index.html", "https://h/index.html/", "https://h/?a=1"],
    ["https://h/index.html?a=1", "https://h/index.html@qa=1", "https://h/?a=1"],
    ["http://h/a", "https://h/a", "https://h:80/a", "http://h:443/a", "https://h_http/a"],
    ["https://h:8080/a", "https://h_8080/a", "http://h:8080/a", "https://u@h/a", "https://h_uu/a"],
    ["https://h/A", "https://h/a"],
    ["https://h/a%2Fb", "https://h/a/b", "https://h/a%252Fb"],
    ["https://h/a%20b", "https://h/a%2520b", "https://h/a@20b", "https://h/a%4020b"],
    ["https://h/a!", "https://h/a%21", "https://h/a+", "https://h/a%2B"],
    ["https://h/a:", "https://h/a%3A", "https://h/a@3A", "https://h/a*", "https://h/a%2A"],
    ["https://h/a.", "https://h/a%252E", "https://h/a", "https://h/a..", "https://h/a.%252E"],
    ["https://h/con", "https://h/%2563on", "https://h/con.txt", "https://h/%2563on.txt"],
    ["https://h//", "https://h/", "https://h/@e", "https://h/@e/", "https://h///"],
    ["https://h/a//b", "https://h/a/@e/b", "https://h/a/b", "https://h/a//"],
    ["https://h/q?a", "https://h/q@@qa", "https://h/q@qa", "https://h/q?a/b", "https://h/q/?a"],
    ["https://h/?a=.", "https://h/?a=%2E", "https://h/?a=%252E", "https://h/?a"],
]


@pytest.mark.parametrize("urls", COLLISION_GROUPS)
def test_collision_groups_get_distinct_prefix_free_paths(urls: list[str]) -> None:
    _assert_injective_and_prefix_free(urls)


def test_long_name_is_hashed_within_255_bytes() -> None:
    name = "x" * 300
    path = page_path(f"https://example.com/{name}")
    digest = hashlib.sha256(f"{name}@".encode()).hexdigest()[:32]
    assert path == f"pages/example.com/{'x' * 200}@h{digest}"


def test_long_names_differing_only_at_the_end_get_different_files() -> None:
    urls = [f"https://example.com/{'y' * 400}{end}" for end in ("a", "b", "a/", "a/b", "a?q=1")]
    paths = [page_path(url) for url in urls]
    for path in paths:
        _assert_safe(path)
    _assert_injective_and_prefix_free(urls)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/" + "%C3%A9" * 100,  # the cut must not split %XX
        "https://example.com/a" + "%C3%A9" * 100,
        "https://example.com/ab" + "%C3%A9" * 100,
        "https://example.com/" + "\u00e9" * 100,  # nor @XX
        "https://example.com/a" + "\u00e9" * 100,
        "https://example.com/" + "d." * 200 + "/x",  # a long directory
        "https://example.com/?q=" + "%25" * 100,  # a long query
        "https://" + "a_" * 100 + ".example:8080/",  # a long host directory
    ],
)
def test_long_components_are_cut_between_escapes(url: str) -> None:
    path = page_path(url)
    _assert_safe(path)
    for name in path.split("/"):
        if "@h" in name:
            prefix = name[: -len("@h") - 32]
            assert 198 <= len(prefix) <= 200
            assert not set(prefix[-2:]) & set("%@")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "example.com/a",
        "https:///a",
        "http://:80/",
        "https://h:x/",
        "http://[::1]_http/",  # urlsplit accepts it; it must not share http://[::1]/'s file
        "http://[::1]x:80/",
    ],
)
def test_rejects_what_is_not_an_http_url_with_a_host(url: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        page_path(url)


# ---------------------------------------------------------------------------------------------
# Properties, over URLs generated already normalized: unreserved bytes never percent-encoded, other
# escapes in upper-case hex, no dot segments, sorted query, no default port, no fragment.

# Raw characters the normalizer keeps raw, and their escapes, which it never decodes: a scheme that
# decodes before escaping maps each pair to one name.
_TWINS = {raw: f"%{ord(raw):02X}" for raw in "!$&'()*+,;=:@[]/"}
_TWINS.update({escape: raw for raw, escape in _TWINS.items()})
_SEGMENT_ATOMS = st.sampled_from(
    [
        *"aBz09-._~|",
        *(atom for atom in _TWINS if atom != "/"),
        "..",
        "index.html",
        "index",
        ".html",
        "con",
        "Lpt1",
        "%25",
        "%2525",
        "%20",
        "%7C",
        "%00",
        "%C3%A9",
        "%E2%82%AC",
        "%F0%9F%98%80",
        "@d",
        "@e",
        "@q",
        "@h",
        "_http",
        "x" * 120,
        "%C3%A9" * 20,
    ]
)
_QUERY_ATOMS = st.sampled_from(
    [*"ab1.-_~!$'()*+,;:@/?", "%20", "%25", "%2B", "%3D", "%26", "%C3%A9", "=", "z" * 100]
)
_QUERY_PAIRS = st.lists(_QUERY_ATOMS, min_size=1, max_size=4).map("".join)
_QUERIES = st.lists(_QUERY_PAIRS, max_size=3).map(lambda pairs: "&".join(sorted(pairs)))
_HOSTS = st.sampled_from(
    ["example.com", "a_b.example", "con", "[::1]", "[2001:db8::1]", "127.0.0.1", "example.com."]
)
_ORIGINS = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}{port}",
    st.sampled_from(["http", "https"]),
    _HOSTS,
    st.sampled_from(["", ":8080", ":80", ":443", ":1", "_http", "_80"]),
).filter(lambda origin: not origin.endswith(("]_http", "]_80")))  # invalid after an IPv6 literal
# A path is a list of tokens: segment atoms and "/". Near misses, the URLs a flawed scheme confuses
# (a+ and a%2B, x and x/y), come from editing a few tokens of one URL.
_PATH_TOKENS = st.one_of(_SEGMENT_ATOMS, st.just("/"))
_TOKEN_LISTS = st.lists(_PATH_TOKENS, max_size=8)
_Parts = tuple[str, list[str], str]  # origin, path tokens, query


def _url(origin: str, tokens: list[str], query: str) -> str:
    return f"{origin}/{''.join(tokens)}" + (f"?{query}" if query else "")


def _is_normalized(url: str) -> bool:
    scheme, _, rest = url.partition("://")
    netloc, _, path_and_query = rest.partition("/")
    default_port = {"http": ":80", "https": ":443"}[scheme]
    segments = path_and_query.partition("?")[0].split("/")
    return not netloc.endswith(default_port) and all(s not in (".", "..") for s in segments)


@st.composite
def _edited(draw: st.DrawFn, parts: _Parts) -> _Parts:
    """One to three edits of a URL."""
    origin, tokens, query = parts[0], list(parts[1]), parts[2]
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(["twin", "replace", "insert", "delete", "query", "origin"]))
        at = draw(st.integers(0, max(len(tokens) - 1, 0)))
        if edit == "twin" and tokens:
            tokens[at] = _TWINS.get(tokens[at], tokens[at])
        elif edit == "replace" and tokens:
            tokens[at] = draw(_PATH_TOKENS)
        elif edit == "delete" and tokens:
            del tokens[at]
        elif edit == "query":
            query = draw(st.one_of(_QUERIES, st.just(query + draw(_QUERY_ATOMS))))
        elif edit == "origin":
            origin = draw(_ORIGINS)
        else:
            tokens.insert(at, draw(_PATH_TOKENS))
    return origin, tokens, query


def _with_directories(parts: _Parts) -> list[str]:
    """The URL, and each directory on its path both as a directory and as a file."""
    origin, tokens, query = parts
    prefixes = [tokens[: i + slash] for i, t in enumerate(tokens) if t == "/" for slash in (0, 1)]
    return [_url(origin, tokens, query)] + [_url(origin, prefix, "") for prefix in prefixes]


@st.composite
def _url_families(draw: st.DrawFn, max_size: int) -> list[str]:
    """Normalized URLs: one, up to `max_size` - 1 near misses of it, and their directories."""
    parts = draw(_PARTS)
    family = [parts, *draw(st.lists(_edited(parts), min_size=1, max_size=max_size - 1))]
    return [url for member in family for url in _with_directories(member) if _is_normalized(url)]


_PARTS = st.tuples(_ORIGINS, _TOKEN_LISTS, _QUERIES)
_URLS = _PARTS.map(lambda parts: _url(*parts)).filter(_is_normalized)
_NEAR_PAIRS = _PARTS.flatmap(
    lambda parts: _edited(parts).map(lambda edit: (_url(*parts), _url(*edit)))
).filter(lambda pair: _is_normalized(pair[0]) and _is_normalized(pair[1]))

_FAST = settings(max_examples=200, database=None)


@_FAST
@given(_URLS)
@example("https://example.com/?a=.")
@example("https://example.com/a%2E")
@example("https://con/con.txt/aux?x=1")
def test_path_is_always_safe_and_inside_pages(url: str) -> None:
    path = page_path(url)
    _assert_safe(path)
    output = os.path.join(os.sep, "output")
    resolved = os.path.normpath(os.path.join(output, path))
    assert resolved.startswith(os.path.join(output, "pages") + os.sep)


@_FAST
@given(st.one_of(_NEAR_PAIRS, st.tuples(_URLS, _URLS)))
@example(("https://h/a+", "https://h/a%2B"))
@example(("https://h/a!", "https://h/a%21"))
@example(("https://h/a:b", "https://h/a%3Ab"))
@example(("https://h/a@", "https://h/a%40"))
def test_distinct_urls_get_distinct_paths(pair: tuple[str, str]) -> None:
    a, b = pair
    if a != b:
        assert page_path(a) != page_path(b)


@_FAST
@given(_url_families(max_size=15))
@example(["https://h/a+", "https://h/a%2B", "https://h/a!", "https://h/a%21"])
@example(["https://h/x", "https://h/x/", "https://h/x/y", "https://h/x/index.html", "https://h/x?a=1"])
def test_paths_are_injective_and_prefix_free(urls: list[str]) -> None:
    _assert_injective_and_prefix_free(urls)


@_FAST
@given(_url_families(max_size=10))
def test_urls_from_the_normalizer_get_safe_distinct_prefix_free_paths(urls: list[str]) -> None:
    normalized = [url for url in map(normalize_url, urls) if url is not None]
    for url in normalized:
        _assert_safe(page_path(url))
    _assert_injective_and_prefix_free(normalized)


# ---------------------------------------------------------------------------------------------

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789"
}


def _assert_safe(path: str) -> None:
    assert path.startswith("pages/")
    assert "\0" not in path
    for name in path.split("/"):
        assert name not in ("", ".", "..")
        assert len(name.encode()) <= 255
        assert name.isascii() and name.isprintable()
        assert not set(name) & set('<>:"\\|?*')
        assert not name.endswith((".", " "))
        assert name.partition(".")[0].upper() not in _WINDOWS_RESERVED


def _assert_injective_and_prefix_free(urls: Iterable[str]) -> None:
    files = {url: page_path(url) for url in urls}
    assert len(set(files.values())) == len(files), files
    directories: set[str] = set()
    for path in files.values():
        names = path.split("/")
        directories.update("/".join(names[:i]) for i in range(1, len(names)))
    clashes = directories & set(files.values())
    assert not clashes, clashes
