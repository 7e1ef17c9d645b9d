"""Parity: `extract_links_lxml` returns exactly what `extract_links` (bs4) returns, on any page.

Both tokenize with the same libxml2 push parser fed the same text, so a difference can only come
from what bs4 does on top of it: attribute and tag name handling, tree building, traversal order.
Every difference found is pinned with an @example; each was fixed on the side that was wrong
against browsers (see test_links.py for the behaviour itself).
"""

import pytest
from benchmarks.sitegen import page_name, render_page
from hypothesis import example, given
from hypothesis import strategies as st

from crawlpool.links import extract_links, extract_links_lxml
from tests.site import GZ_PAGE, NOTES, PAGES

PAGE = "https://example.com/dir/page.html"
HTML = "text/html"


def same_links(body: bytes, content_type: str | None = HTML, url: str = PAGE) -> list[str]:
    """The links both extractors find, after asserting they agree."""
    expected = extract_links(body, url, content_type)
    assert extract_links_lxml(body, url, content_type) == expected
    return expected


@pytest.mark.parametrize("path", sorted(PAGES))
def test_the_test_site(path: str) -> None:
    same_links(PAGES[path].encode(), "text/html; charset=utf-8", "http://127.0.0.1:8080" + path)


def test_the_test_site_extras() -> None:
    assert same_links(GZ_PAGE.encode()) == ["https://example.com/from-gzip.html"]
    assert same_links(NOTES.encode()) == ["https://example.com/never-followed"]  # if served as HTML


@pytest.mark.parametrize("i", [0, 1, 7, 999, 1999])
def test_benchmark_pages(i: int) -> None:
    url = f"http://127.0.0.1:8080/{page_name(i)}"
    assert len(same_links(render_page(i, 2000).encode(), HTML, url)) > 20


# --- tag soup -----------------------------------------------------------------------------------

_TAG_NAMES = st.sampled_from(
    [
        *("a", "A", "area", "link", "iframe", "frame", "base", "Base"),  # the ones that matter
        *("div", "p", "b", "table", "tr", "td", "select", "option", "form", "img", "meta"),
        *("html", "head", "body", "frameset", "svg", "math", "template", "noscript", "object"),
        *("script", "style", "title", "textarea", "xmp", "noembed", "noframes", "plaintext"),
    ]
)
_ATTR_NAMES = st.sampled_from(
    ["href", "src", "HREF", "Src", "name", "rel", "charset", "{x}href", "{}src", "xlink:href", "x:href"]
)
_VALUES = st.one_of(
    st.sampled_from(
        [
            *("/a", "b/", "../c", "?q=1", "#f", "", " /sp\n", "//cdn.example/x", "https://o.example/"),
            *("mailto:x@y.z", "javascript:0", "/café", "/日本", "/&amp;x", "&eacute;", "/x&notit;", "&#0;"),
            *("latin-1", "shift_jis", "utf-16", "x-bogus", "text/html; charset=koi8-r"),
        ]
    ),
    st.text(alphabet="ab/.?#&;= <>'\"\t\n\x00é日\ufeff", max_size=10),
)


@st.composite
def _attribute(draw: st.DrawFn) -> str:
    name = draw(_ATTR_NAMES)
    value = draw(_VALUES)
    quoting = draw(st.sampled_from(['="{}"', "='{}'", "={}", ""]))
    return name + quoting.format(value)


_START_TAGS = st.builds(
    lambda name, attrs, slash: f"<{name}{''.join(' ' + a for a in attrs)}{slash}>",
    _TAG_NAMES,
    st.lists(_attribute(), max_size=3),
    st.sampled_from(["", "/", " /"]),
)
_END_TAGS = _TAG_NAMES.map(lambda name: f"</{name}>")
_OTHER = st.sampled_from(
    [
        *("<!-- c -->", "<!--", "-->", "<!-->", "<!--->", "--!>", "<!", "<?pi?>", "<![CDATA[", "]]>"),
        *("<", "</", ">", "&", "<!doctype html>", "\ufeff", "\x00", "</script", "<!--<script>"),
        "<?xml version='1.0' encoding='latin-1'?>",
        '<meta charset="latin-1">',
        '<meta charset="shift_jis">',
        '<meta http-equiv="content-type" content="text/html; charset=utf-16">',
    ]
)
_TEXT = st.text(alphabet="ab <>&;/é", max_size=6)

#: HTML-ish text: a random mix of link and other tags, attributes, comments and raw-text elements.
tag_soup = st.lists(st.one_of(_START_TAGS, _END_TAGS, _OTHER, _TEXT), max_size=25).map("".join)

_ENCODINGS = st.sampled_from(
    ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1", "shift_jis", "gb18030", "koi8-r"]
)
_CONTENT_TYPES = st.sampled_from(
    [
        HTML,
        "text/html; charset=utf-8",
        "text/html; charset=latin-1",
        "text/html; charset=shift_jis",
        "text/html; charset=utf-16",
        "text/html; charset=x-bogus",
        "application/xhtml+xml",
    ]
)


@given(html=tag_soup, encoding=_ENCODINGS, content_type=_CONTENT_TYPES)
@example(html='<a href="/a" {x}href="/b">', encoding="utf-8", content_type=HTML)
@example(html="<a {x}href=/b><a {}src=/c><iframe {}src=/d>", encoding="utf-8", content_type=HTML)
@example(html="\ufeff\ufeff<base href=/b/><a href=x>", encoding="utf-8-sig", content_type=HTML)
@example(html="<?xml version='1.0' encoding='latin-1'?><a href=/é>", encoding="latin-1", content_type=HTML)
def test_tag_soup(html: str, encoding: str, content_type: str) -> None:
    # The page's bytes need not match the charset it is served with: that happens too.
    same_links(html.encode(encoding, "xmlcharrefreplace"), content_type)


@given(body=st.binary(max_size=500), content_type=_CONTENT_TYPES)
def test_arbitrary_bytes(body: bytes, content_type: str) -> None:
    same_links(body, content_type)
