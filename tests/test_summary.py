from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from crawlpool.outcome import ended_text
from crawlpool.records import Page
from crawlpool.stats import CrawlStats
from crawlpool.summary import (
    count_top_hosts,
    headline,
    render_summary,
    stats_json,
    status_classes,
    summary_lines,
)

MANIFEST = Path("out/my crawl/manifest.jsonl")
HOSTS = [("quotes.toscrape.com", 812), ("books.toscrape.com", 400)]


def make_stats(*, errors: bool = True, outcome: str = "finished", queued: int = 0) -> CrawlStats:
    by_error = Counter({"http_4xx": 40, "timeout": 10, "http_5xx": 4}) if errors else Counter[str]()
    return CrawlStats(
        pages=1_234,
        records=1_300,
        errors=sum(by_error.values()),
        bytes=12_900_000,
        requests=1_350,
        retries=50,
        robots_blocked=3,
        traps=7,
        elapsed_s=62.3,
        by_status=Counter({"200": 1_200, "206": 34, "301": 12, "404": 40, "503": 4, "none": 10}),
        by_error=by_error,
        outcome=outcome,
        queued=queued,
    )


def page(url: str, *, stored: bool = True) -> Page:
    return Page(
        url=url,
        final_url=url,
        status=200,
        content_type="text/html",
        depth=0,
        referrer=None,
        path="p" if stored else None,
        bytes=1,
        sha256=None,
        fetched_at="2024-01-01T00:00:00.000Z",
        elapsed_ms=1,
        error=None,
        links=0,
    )


def test_status_classes() -> None:
    assert status_classes({"200": 3, "204": 1, "404": 2, "none": 1}) == {
        "2xx": 4,
        "3xx": 0,
        "4xx": 2,
        "5xx": 0,
        "none": 1,
    }
    assert list(status_classes({"101": 1})) == ["2xx", "3xx", "4xx", "5xx", "none", "1xx"]


def test_summary_lines_show_every_number() -> None:
    lines = summary_lines(make_stats(), manifest=MANIFEST, top_hosts=HOSTS)
    assert lines[0] == "crawlpool: crawl finished in 1m02s"
    rows = {line.split("  ", 2)[1].strip(): line.split("  ", 2)[2].strip() for line in lines[1:-1]}
    assert rows == {
        "pages stored": "1,234",
        "URLs tried": "1,300 (1,350 page requests)",
        "status": "2xx 1,234, 3xx 12, 4xx 40, 5xx 4, none 10",
        "errors": "54: http_4xx 40, timeout 10, http_5xx 4",
        "retries": "50",
        "robots-blocked": "3",
        "traps skipped": "7",
        "bytes stored": "12.3 MiB",
        "elapsed": "1m02s",
        "speed": "19.8 pages/s",
        "top hosts": "quotes.toscrape.com 812, books.toscrape.com 400",
        "manifest": "out/my crawl/manifest.jsonl",
        "failures": "crawlpool failures 'out/my crawl'",
    }
    assert lines[-1].strip() == "or: jq -c 'select(.error) | {url, error}' 'out/my crawl/manifest.jsonl'"


def test_summary_of_a_clean_stopped_crawl() -> None:
    lines = summary_lines(make_stats(errors=False, outcome="stopped", queued=228), manifest=MANIFEST)
    text = "\n".join(lines)
    assert (
        lines[0]
        == "crawlpool: crawl stopped before it was done with 228 URLs queued; continue it with --resume"
    )
    assert "errors          none" in text
    assert "failures" not in text
    assert "jq" not in text
    assert "top hosts" not in text


def test_render_summary_has_the_same_content_as_the_lines() -> None:
    stats = make_stats(outcome="finished")
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(render_summary(stats, manifest=MANIFEST, top_hosts=HOSTS))
    text = console.export_text()
    for line in summary_lines(stats, manifest=MANIFEST, top_hosts=HOSTS)[1:]:
        assert line.strip() in text
    assert "crawl finished in 1m02s" in text


def test_stats_json_round_trips() -> None:
    stats = make_stats()
    data = stats_json(stats, top_hosts=HOSTS)
    assert json.loads(json.dumps(data)) == data
    assert data["pages"] == 1_234
    assert data["by_error"] == {"http_4xx": 40, "http_5xx": 4, "timeout": 10}
    assert data["by_status_class"] == {"2xx": 1_234, "3xx": 12, "4xx": 40, "5xx": 4, "none": 10}
    assert data["top_hosts"] == [
        {"host": "quotes.toscrape.com", "pages": 812},
        {"host": "books.toscrape.com", "pages": 400},
    ]
    assert stats.as_dict().items() <= data.items()


def test_count_top_hosts_counts_stored_pages() -> None:
    pages = [
        page("https://b.example/1"),
        page("https://b.example/2"),
        page("http://a.example:8080/"),
        page("https://c.example/"),
        page("https://c.example/x", stored=False),
    ]
    assert count_top_hosts(pages) == [("b.example", 2), ("a.example", 1), ("c.example", 1)]
    assert count_top_hosts(pages, limit=1) == [("b.example", 2)]


@pytest.mark.parametrize(
    ("outcome", "queued", "expected"),
    [
        ("finished", 0, "crawl finished in 1m02s"),
        ("max_pages", 228, "crawl stopped at --max-pages with 228 URLs queued; continue it with --resume"),
        ("stopped", 5, "crawl stopped before it was done with 5 URLs queued; continue it with --resume"),
        ("unreachable", 0, "crawl ended: no seed could be reached (see the failures below)"),
    ],
)
def test_headline_says_why_the_crawl_ended(outcome: str, queued: int, expected: str) -> None:
    assert headline(make_stats(outcome=outcome, queued=queued)) == expected
    # `crawlpool status` describes the same ending in the same words
    assert expected.removeprefix("crawl ").removesuffix(" in 1m02s") == ended_text(outcome, queued)


def test_summary_names_unreachable_hosts_and_causes() -> None:
    stats = CrawlStats()
    for host in ("b.invalid", "a.invalid"):
        stats.count(unreachable_page(f"http://{host}/", "robots: dns: robots.txt unreachable: no such host"))
    stats.count(unreachable_page("http://127.0.0.1:9/x", "connect: refused"))
    rows = dict(
        tuple(line.split("  ", 2)[1:])
        for line in summary_lines(stats, manifest=MANIFEST)[1:]
        if line.startswith("  ")
    )
    rows = {label.strip(): value.strip() for label, value in rows.items()}
    assert rows["errors"] == "3: robots 2 (dns 2), connect 1"
    assert (
        rows["unreachable"]
        == "3 hosts could not be reached: 127.0.0.1:9 (connect), a.invalid (dns), b.invalid (dns)"
    )
    assert stats.nothing_reached
    assert stats_json(stats)["by_cause"] == {"robots": {"dns": 2}}


def unreachable_page(url: str, error: str) -> Page:
    return Page(url, url, None, None, 0, None, None, 0, None, "2024-01-01T00:00:00.000Z", 0, error, 0)


def test_a_resumed_crawl_summary_says_the_whole_crawl_too() -> None:
    stats = make_stats()
    stats.crawl_done, stats.crawl_seen = 2_600, 3_100
    lines = summary_lines(stats, manifest=MANIFEST)
    assert lines[1].split(None, 2)[2] == (
        "2,600 URLs done of 3,100 discovered; the rest of this summary counts this run"
    )
    assert lines[1].startswith("  whole crawl")
