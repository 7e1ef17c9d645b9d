"""A record's manifest line: the same keys and values with orjson (crawlpool[fast]) and without."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlpool import records
from crawlpool.records import MANIFEST_FIELDS, Page

texts = st.text(max_size=20)  # any code point, lone surrogates included
pages = st.builds(
    Page,
    url=texts,
    final_url=texts,
    status=st.none() | st.integers(100, 599),
    content_type=st.none() | texts,
    depth=st.integers(0, 10**6),
    referrer=st.none() | texts,
    path=st.none() | texts,
    bytes=st.integers(0, 2**62),
    sha256=st.none() | st.just("0" * 64),
    fetched_at=texts,
    elapsed_ms=st.integers(0, 10**9),
    error=st.none() | texts,
    links=st.integers(0, 10**6),
    kind=st.sampled_from(["page", "requisite", "sitemap"]),
    warc_offset=st.none() | st.integers(0, 2**62),
)


@given(pages)
def test_the_line_holds_every_field_with_or_without_orjson(page: Page) -> None:
    assert records._orjson is not None, "the test extra installs orjson"
    fast = page.to_json()
    saved, records._orjson = records._orjson, None
    try:
        plain = page.to_json()
    finally:
        records._orjson = saved
    assert "\n" not in fast
    assert json.loads(fast) == json.loads(plain) == {name: getattr(page, name) for name in MANIFEST_FIELDS}
    assert Page.from_dict(json.loads(fast)) == page


def test_a_lone_surrogate_is_written_as_json_writes_it() -> None:
    # aiohttp decodes header bytes that are not UTF-8 as lone surrogates; orjson refuses those.
    page = Page(
        "http://a.test/",
        "http://a.test/",
        200,
        "text/html; x=\udcff",
        0,
        None,
        None,
        0,
        None,
        "t",
        0,
        None,
        0,
    )
    assert page.to_json() == json.dumps(
        {name: getattr(page, name) for name in MANIFEST_FIELDS}, ensure_ascii=False, separators=(",", ":")
    )


@pytest.mark.parametrize("value", ["é", "日本", "\x00\x1f", '"\\'])
def test_non_ascii_is_written_as_is_and_controls_escaped(value: str) -> None:
    line = Page(
        "http://a.test/", "http://a.test/", None, None, 0, None, None, 0, None, "t", 0, value, 0
    ).to_json()
    assert json.loads(line)["error"] == value
    assert value.isascii() or value in line
