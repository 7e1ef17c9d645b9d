"""`CrawlResult.to_dataframe()`: the records as a pandas DataFrame, and a clear error without pandas."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp.test_utils import TestServer

from crawlpool import CrawlResult, CrawlStats, Page, crawl
from crawlpool.records import MANIFEST_FIELDS
from tests.site import EXPECTED


@pytest.fixture
def pd() -> ModuleType:
    return pytest.importorskip("pandas")


def _page(url: str, status: int | None, fetched_at: str, error: str | None = None) -> Page:
    stored = status == 200
    return Page(
        url=url,
        final_url=url,
        status=status,
        content_type="text/html" if status else None,
        depth=1,
        referrer="https://example.com/",
        path="pages/example.com/x@" if stored else None,
        bytes=120 if stored else 0,
        sha256="ab" * 32 if stored else None,
        fetched_at=fetched_at,
        elapsed_ms=15,
        error=error,
        links=3 if stored else 0,
    )


PAGES = [
    _page("https://example.com/a", 200, "2024-05-01T12:00:00.123Z"),
    _page("https://example.com/b", 404, "2024-05-01T12:00:01.000Z", "http_4xx: 404 Not Found"),
    _page("https://example.com/c", None, "2024-05-01T12:00:02.500Z", "timeout: no response in 30 s"),
]


def _result(pages: list[Page]) -> CrawlResult:
    return CrawlResult(pages, CrawlStats(), Path("output"))


def test_one_row_per_page_with_the_manifest_fields_in_order(pd: ModuleType) -> None:
    frame = _result(PAGES).to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(MANIFEST_FIELDS)
    assert len(frame) == len(PAGES)
    assert list(frame["url"]) == [p.url for p in PAGES]
    assert frame.loc[1, "error"] == "http_4xx: 404 Not Found"
    assert frame.loc[0, "bytes"] == 120


def test_fetched_at_is_a_utc_datetime(pd: ModuleType) -> None:
    frame = _result(PAGES).to_dataframe()
    dtype = frame["fetched_at"].dtype
    assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"
    assert frame.loc[0, "fetched_at"].to_pydatetime() == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_status_stays_an_integer_when_a_page_got_no_response(pd: ModuleType) -> None:
    frame = _result(PAGES).to_dataframe()
    assert str(frame["status"].dtype) == "Int64"
    assert list(frame["status"].iloc[:2]) == [200, 404]
    assert frame["status"].isna().tolist() == [False, False, True]


def test_an_empty_crawl_gives_an_empty_frame_with_the_columns(pd: ModuleType) -> None:
    frame = _result([]).to_dataframe()
    assert frame.empty
    assert list(frame.columns) == list(MANIFEST_FIELDS)


async def test_a_real_crawl_gives_one_row_per_record(
    pd: ModuleType, site: TestServer, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{site.port}"
    result = await crawl([base + "/"], output=tmp_path / "o", retries=0)
    frame = result.to_dataframe()
    assert sorted(frame["url"]) == sorted(base + path for path in EXPECTED)
    assert frame["fetched_at"].notna().all()
    # Without the token header the private page is refused.
    assert frame.set_index("url").loc[base + "/private", "status"] == 403


def test_without_pandas_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError) as caught:
        _result(PAGES).to_dataframe()
    message = str(caught.value)
    assert "\n" not in message
    assert "pip install pandas" in message
    assert "pip install 'crawlpool[notebook]'" in message
