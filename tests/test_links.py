"""Tests for crawlpool.links: which URLs a page yields, from its bytes and Content-Type."""

import codecs
import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crawlpool.links import (
    EXTRACTORS,
    LinkExtractor,
    decode_html,
    extract_links,
    extract_links_lxml,
    get_extractor,
    is_html,
    resolve_links,
    sniff_encoding,
)

PAGE = "https://example.com/dir/page.html"
HTML = "text/html"

# Every behavioural test runs against every extractor: they share one contract.
each_extractor = pytest.mark.parametrize("extractor", list(EXTRACTORS.values()), ids=list(EXTRACTORS))


class Links(Protocol):
    def __call__(self, html: str | bytes, content_type: str | None = ..., url: str = ...) -> list[str]: ...


@pytest.fixture(params=list(EXTRACTORS.values()), ids=list(EXTRACTORS))
def links(request: pytest.FixtureRequest) -> Links:
    """The links one extractor finds in a page given as text (UTF-8) or bytes."""
    extractor: LinkExtractor = request.param

    def links(html: str | bytes, content_type: str | None = HTML, url: str = PAGE) -> list[str]:
        body = html.encode() if isinstance(html, str) else html
        return extractor(body, url, content_type)

    return links


# --- the extractors -----------------------------------------------------------------------------


@each_extractor
def test_extractors_fit_the_extractor_type(extractor: LinkExtractor) -> None:
    assert extractor(b'<a href="/x">', PAGE, HTML) == ["https://example.com/x"]


def test_extractors_by_name() -> None:
    assert get_extractor("bs4") is extract_links
    assert get_extractor("lxml") is extract_links_lxml
    assert set(EXTRACTORS) == {"bs4", "lxml"}


def test_an_unknown_extractor_name_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'html5lib'.*bs4, lxml"):
        get_extractor("html5lib")


@each_extractor
def test_extractors_pickle_for_a_process_pool(extractor: LinkExtractor) -> None:
    assert pickle.loads(pickle.dumps(extractor)) is extractor


# --- which tags -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        '<a href="/t">x</a>',
        '<map name="m"><area href="/t" shape="rect" coords="0,0,1,1"></map>',
        '<head><link rel="stylesheet" href="/t"></head>',
        '<iframe src="/t"></iframe>',
        '<frameset><frame src="/t"></frameset>',
        '<A HREF="/t">upper case</A>',
    ],
)
def test_each_link_tag(links: Links, html: str) -> None:
    assert links(html) == ["https://example.com/t"]


@pytest.mark.parametrize(
    "html",
    [
        '<a name="anchor">no href</a>',
        '<iframe href="/t"></iframe>',  # iframes use src
        '<a src="/t">a uses href</a>',
        '<img src="/t.png"><script src="/t.js"></script><form action="/t"></form>',
        "<div>https://example.com/in-text</div>",
        '<svg><a xlink:href="/t">xlink is not href</a></svg>',
        '<a {x}href="/t">nor is an XML-namespace-looking name</a>',
    ],
)
def test_other_tags_and_attributes_are_ignored(links: Links, html: str) -> None:
    assert links(html) == []


def test_an_attribute_named_like_an_xml_namespace_does_not_replace_href(links: Links) -> None:
    # bs4 used to read "{x}href" as lxml's namespace notation for href, and let it win.
    html = '<a href="/real" {x}href="/fake">x</a><a {}href="/fake2" src="/no">y</a>'
    assert links(html) == ["https://example.com/real"]


# --- resolution, base, normalization ------------------------------------------------------------


def test_relative_absolute_and_scheme_relative_links(links: Links) -> None:
    html = """
        <a href="sibling.html">1</a>
        <a href="../up.html">2</a>
        <a href="/root">3</a>
        <a href="?q=1">4</a>
        <a href="https://other.example/abs">5</a>
        <a href="//cdn.example/lib">6</a>
        <a href="HTTP://Example.COM:80/x">7</a>
    """
    assert links(html) == [
        "https://example.com/dir/sibling.html",
        "https://example.com/up.html",
        "https://example.com/root",
        "https://example.com/dir/page.html?q=1",
        "https://other.example/abs",
        "https://cdn.example/lib",
        "http://example.com/x",
    ]


def test_scheme_relative_link_takes_the_page_scheme(links: Links) -> None:
    assert links('<a href="//cdn.example/lib">', url="http://example.com/") == ["http://cdn.example/lib"]


def test_absolute_base_href(links: Links) -> None:
    html = '<head><base href="https://base.example/sub/"></head><a href="x">1</a><a href="/y">2</a>'
    assert links(html) == ["https://base.example/sub/x", "https://base.example/y"]


def test_relative_base_href_is_resolved_against_the_page_url(links: Links) -> None:
    html = '<base href="../other/"><a href="x">1</a>'
    assert links(html) == ["https://example.com/other/x"]


def test_base_applies_to_links_before_it_and_only_the_first_base_href_counts(links: Links) -> None:
    html = (
        '<a href="early">0</a><base target="_blank"><base href="/first/">'
        '<base href="/second/"><a href="late">1</a>'
    )
    assert links(html) == ["https://example.com/first/early", "https://example.com/first/late"]


@pytest.mark.parametrize("base", ["//[::1", "mailto:someone@example.com", "javascript:void(0)"])
def test_unusable_base_falls_back_to_the_page_url(links: Links, base: str) -> None:
    html = f'<base href="{base}"><a href="x">1</a><a href="https://abs.example/">2</a>'
    assert links(html) == ["https://example.com/dir/x", "https://abs.example/"]


def test_base_is_not_a_link_itself(links: Links) -> None:
    assert links('<base href="https://base.example/">') == []


def test_fragments_are_dropped_and_duplicates_removed(links: Links) -> None:
    html = '<a href="/a#x">1</a><a href="/a">2</a><a href="/a#y">3</a><a href="#top">4</a>'
    assert links(html) == ["https://example.com/a", PAGE]


def test_document_order_is_kept_with_first_occurrence_winning(links: Links) -> None:
    html = """
        <link rel="canonical" href="/c">
        <a href="/z">z</a><iframe src="/m"></iframe><a href="/a">a</a>
        <a href="/c">again</a><area href="/b"><a href="/z">again</a>
    """
    assert links(html) == [
        "https://example.com/c",
        "https://example.com/z",
        "https://example.com/m",
        "https://example.com/a",
        "https://example.com/b",
    ]


@pytest.mark.parametrize(
    "href",
    [
        "mailto:someone@example.com",
        "javascript:void(0)",
        "JavaScript:alert(1)",
        "data:text/html,<a href=x>",
        "tel:+15555550100",
        "ftp://ftp.example.com/file",
        "http://[::1",  # unparseable
        "https://example.com:99999/",  # bad port
    ],
)
def test_non_http_and_invalid_links_are_dropped(links: Links, href: str) -> None:
    assert links(f'<a href="{href}">x</a><a href="/kept">y</a>') == ["https://example.com/kept"]


def test_entities_and_surrounding_whitespace_in_hrefs(links: Links) -> None:
    html = '<a href="  /p?a=1&amp;b=2\n">x</a><a href="/caf&eacute;">y</a>'
    assert links(html) == ["https://example.com/p?a=1&b=2", "https://example.com/caf%C3%A9"]


def test_resolve_links_dedupes_in_order() -> None:
    hrefs = ["b", "/a#f", "mailto:x@example.com", "/a", "b"]
    assert resolve_links(hrefs, PAGE) == ["https://example.com/dir/b", "https://example.com/a"]
    assert resolve_links(["b"], PAGE, "/base/") == ["https://example.com/base/b"]


# --- what is not a link -------------------------------------------------------------------------


def test_links_in_comments_scripts_styles_and_raw_text_are_not_returned(links: Links) -> None:
    html = """
        <!-- <a href="/comment">old</a> -->
        <script>document.write('<a href="/script">x</a>'); var s = "<iframe src='/s2'>";</script>
        <script type="text/template"><a href="/template-script">t</a></script>
        <style>/* <a href="/style"> */ a { background: url(/bg.png) }</style>
        <textarea><a href="/textarea">t</a></textarea>
        <title><a href="/title">t</a></title>
        <a href="/real">real</a>
    """
    assert links(html) == ["https://example.com/real"]


def test_a_script_that_is_never_closed_hides_the_rest_of_the_page(links: Links) -> None:
    # What a browser does too: everything after <script> is script text.
    assert links('<a href="/before"><script>var a = 1; <a href="/after">') == ["https://example.com/before"]


def test_links_in_noscript_are_returned(links: Links) -> None:
    # Deliberate: <noscript> is what a client without JavaScript, a crawler, is offered.
    html = '<noscript><a href="/no-js">x</a><iframe src="/tracker"></iframe></noscript>'
    assert links(html) == ["https://example.com/no-js", "https://example.com/tracker"]


# --- content types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/html", True),
        ("TEXT/HTML; charset=UTF-8", True),
        (" text/html ;charset=utf-8", True),
        ("application/xhtml+xml", True),
        ("Application/XHTML+XML; charset=utf-8", True),
        (None, False),
        ("", False),
        ("text/plain", False),
        ("text/htmlx", False),
        ("application/xml", False),
        ("image/png", False),
        ("application/pdf", False),
        ("application/json", False),
        ("charset=utf-8; text/html", False),
    ],
)
def test_is_html(content_type: str | None, expected: bool) -> None:
    assert is_html(content_type) is expected


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", "image/png", "application/pdf", "application/json", "text/css"],
)
def test_non_html_content_types_yield_nothing_even_for_html_bodies(
    links: Links,
    content_type: str | None,
) -> None:
    assert links('<html><body><a href="/x">x</a></body></html>', content_type) == []


def test_xhtml_is_parsed(links: Links) -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><base href="/b/"/>'
        '<link rel="stylesheet" href="s.css"/></head>'
        '<body><p><a href="x"/><a href="y">y</a></p></body></html>'
    )
    assert links(body, "application/xhtml+xml; charset=utf-8") == [
        "https://example.com/b/s.css",
        "https://example.com/b/x",
        "https://example.com/b/y",
    ]


# --- charsets -----------------------------------------------------------------------------------

CAFE = "https://example.com/caf%C3%A9"


def test_charset_from_the_header(links: Links) -> None:
    body = '<a href="/café">x</a>'.encode("latin-1")
    assert links(body, "text/html; charset=latin-1") == [CAFE]
    assert links(body, 'text/html; charset="ISO-8859-1"') == [CAFE]


def test_latin1_label_decodes_as_windows_1252_like_browsers(links: Links) -> None:
    assert links(b'<a href="/\x80">euro</a>', "text/html; charset=iso-8859-1") == [
        "https://example.com/%E2%82%AC"
    ]


def test_query_is_percent_encoded_as_utf8_whatever_the_page_charset(links: Links) -> None:
    body = '<a href="/café?q=café">x</a>'.encode("latin-1")
    assert links(body, "text/html; charset=latin-1") == [CAFE + "?q=caf%C3%A9"]


def test_multibyte_legacy_charset(links: Links) -> None:
    body = '<a href="/日本">x</a>'.encode("shift_jis")
    assert links(body, "text/html; charset=Shift_JIS") == ["https://example.com/%E6%97%A5%E6%9C%AC"]


@pytest.mark.parametrize(
    "body",
    [
        codecs.BOM_UTF8 + '<a href="/café">'.encode(),
        '<a href="/café">'.encode("utf-16"),  # native order, with BOM
        codecs.BOM_UTF16_LE + '<a href="/café">'.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + '<a href="/café">'.encode("utf-16-be"),
    ],
    ids=["utf-8", "utf-16", "utf-16-le", "utf-16-be"],
)
def test_charset_from_a_bom(links: Links, body: bytes) -> None:
    assert links(body, HTML) == [CAFE]


def test_a_bom_wins_over_the_header(links: Links) -> None:
    body = codecs.BOM_UTF8 + '<a href="/café">'.encode()
    assert links(body, "text/html; charset=windows-1251") == [CAFE]


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="latin-1">',
        "<meta charset=iso-8859-1>",
        '<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=ISO-8859-1">',
        "<meta http-equiv='content-type' content='text/html;charset=windows-1252'>",
    ],
)
def test_charset_from_meta(links: Links, meta: str) -> None:
    body = f'<html><head>{meta}</head><body><a href="/café">x</a>'.encode("latin-1")
    assert links(body, HTML) == [CAFE]


def test_an_xml_declaration_with_a_charset_is_accepted(links: Links) -> None:
    # lxml refuses *text* with an encoding declaration in fromstring(); the extractors feed it.
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><meta charset="latin-1"><a href="/café">x'
    assert links(body.encode("latin-1")) == [CAFE]
    assert links(body.encode("latin-1"), "application/xhtml+xml; charset=iso-8859-1") == [CAFE]


def test_the_header_wins_over_meta(links: Links) -> None:
    body = '<meta charset="windows-1251"><a href="/café">x</a>'.encode()
    assert links(body, "text/html; charset=utf-8") == [CAFE]


def test_meta_charset_must_be_early_and_not_in_a_comment() -> None:
    late = ("<!-- " + "x" * 3000 + " -->" + '<meta charset="latin-1">').encode()
    commented = b'<!-- <meta charset="latin-1"> -->'
    for head in (late, commented):
        assert sniff_encoding(head, HTML) == "utf-8"


def test_meta_claiming_utf16_means_utf8() -> None:
    assert sniff_encoding(b'<meta charset="utf-16">', HTML) == "utf-8"


@pytest.mark.parametrize(
    "charset", ["x-bogus", "base64", "idna", "undefined", "utf-7", "rot13", "", '"', "a\x00b"]
)
def test_unknown_or_non_web_charset_falls_back_without_raising(links: Links, charset: str) -> None:
    body = b'<a href="/caf\xc3\xa9">x</a>'  # UTF-8, which is also the fallback
    assert links(body, f"text/html; charset={charset}") == [CAFE]


def test_unknown_header_charset_falls_through_to_meta(links: Links) -> None:
    body = '<meta charset="latin-1"><a href="/café">x</a>'.encode("latin-1")
    assert links(body, "text/html; charset=x-bogus") == [CAFE]
    assert links(b'<meta charset="x-bogus"><a href="/caf\xc3\xa9">', HTML) == [CAFE]


def test_invalid_bytes_are_replaced_not_raised(links: Links) -> None:
    body = b'<a href="/ok\xff\xfe">x</a>\x80\x81<a href="/after">'
    assert links(body, "text/html; charset=utf-8") == [
        "https://example.com/ok%EF%BF%BD%EF%BF%BD",
        "https://example.com/after",
    ]
    assert decode_html(b"\xc3(", "text/html; charset=utf-8") == "\ufffd("


# --- robustness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"https://example.com/looks-like-a-url",  # bs4 would warn "looks like a URL"
        b"index.html",  # ... or "looks like a filename"
        b'<?xml version="1.0"?><feed><a href="/x"/></feed>',  # ... or "XML parsed as HTML"
        b"\x00\x01\x02\xff\xfe\xfd",
        b"<<<>>><a href=>",
        b"<a href",
        b'<a href="/x',
        b"<!--",
        b"<script>",
        b"\xff\xfe",
        b"\xfe\xff\x00",
    ],
)
def test_odd_bodies_never_raise_or_warn(links: Links, body: bytes) -> None:
    # pytest turns warnings into errors, so this also checks that bs4's warnings are silenced.
    result = links(body)
    assert all(link.startswith("https://example.com/") for link in result)


def test_malformed_html_still_yields_links(links: Links) -> None:
    html = '<html><body><div><p><a href="/one">unclosed <b><a href="/two"><table><tr><td><a href=/three>'
    assert links(html) == [
        "https://example.com/one",
        "https://example.com/two",
        "https://example.com/three",
    ]


def test_nul_and_control_bytes_in_hrefs(links: Links) -> None:
    assert links(b'<a href="/a\x00b">x</a><a href="/ok">') == [
        "https://example.com/a%EF%BF%BDb",
        "https://example.com/ok",
    ]


def test_a_5_mb_page(links: Links) -> None:
    paragraph = b"<p>" + b"filler text " * 100 + b"</p>\n"
    body = b'<a href="/first">' + paragraph * 4_200 + b'<a href="/last">'
    assert len(body) > 5_000_000
    assert links(body) == ["https://example.com/first", "https://example.com/last"]


def test_deeply_nested_markup(links: Links) -> None:
    body = b"<div>" * 50_000 + b"<svg>" + b'<a href="/svg">' * 2_000 + b'</svg><a href="/end">'
    assert links(body) == ["https://example.com/svg", "https://example.com/end"]


# The lxml extractor reuses one parser per thread: nothing of a page may reach the next one.
CUT_OFF_PAGES = [
    '<base href="https://other.example/x/"><a href="/a">',
    "<script>var a = '<a href=\"/in-script\">';",
    "<!-- a comment never closed <a href='/in-comment'>",
    "<textarea><a href='/in-textarea'>",
    "<a href='/cut",
    "<svg><a href='/in-svg'>",
    "\x00\xff<<<>",
]


@pytest.mark.parametrize("before", CUT_OFF_PAGES)
def test_a_page_after_a_cut_off_one_is_read_from_scratch(links: Links, before: str) -> None:
    links(before)
    assert links('<a href="next.html">') == ["https://example.com/dir/next.html"]


def test_lxml_extractor_in_threads_matches_one_thread() -> None:
    pages = [
        f'<a href="/t{i}"><base href="/b{i}/"><a href="x{j}">'.encode() for i in range(8) for j in range(50)
    ]
    alone = [extract_links_lxml(page, PAGE, HTML) for page in pages]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda page: extract_links_lxml(page, PAGE, HTML), pages)) == alone
    assert alone[1] == ["https://example.com/t0", "https://example.com/b0/x1"]


_CONTENT_TYPES = st.sampled_from(
    [
        HTML,
        "text/html; charset=utf-8",
        "text/html; charset=latin-1",
        "text/html; charset=utf-16",
        "text/html; charset=shift_jis",
        "text/html; charset=x-bogus",
        "application/xhtml+xml",
    ]
)


@each_extractor
@given(body=st.binary(max_size=2000), content_type=_CONTENT_TYPES)
@example(body=b"", content_type=HTML)
@example(body=b"\xff\xfe\x00\x00", content_type=HTML)
@example(body=b'<base href="//[::1"><a href="x">', content_type=HTML)
@example(body=b"<a href='\x00'>", content_type=HTML)
def test_arbitrary_bytes_never_raise_and_yield_only_http_urls(
    extractor: LinkExtractor, body: bytes, content_type: str
) -> None:
    result = extractor(body, PAGE, content_type)
    assert all(link.startswith(("http://", "https://")) for link in result)
    assert len(set(result)) == len(result)


@each_extractor
@given(hrefs=st.lists(st.text(max_size=40), max_size=10), charset=_CONTENT_TYPES)
def test_arbitrary_hrefs_never_raise_and_yield_distinct_http_urls(
    extractor: LinkExtractor, hrefs: list[str], charset: str
) -> None:
    html = "".join(f"<a href='{href}'>x</a>" for href in hrefs)
    result = extractor(html.encode("utf-8", "surrogatepass"), PAGE, charset)
    assert all(link.startswith(("http://", "https://")) for link in result)
    assert len(set(result)) == len(result)
