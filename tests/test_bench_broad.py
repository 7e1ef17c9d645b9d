"""The broad benchmark's pure parts: its site, the coverage check, the bound, which rows it can run."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from benchmarks.broad import bound, crawlpool_rows, scaling_lines
from benchmarks.broad_site import PORT, Coverage, Site, host_address, root_url


def test_each_host_is_its_own_loopback_address() -> None:
    assert [host_address(i) for i in (0, 199, 253, 254, 508)] == [
        "127.0.1.1",
        "127.0.1.200",
        "127.0.1.254",
        "127.0.2.1",
        "127.0.3.1",
    ]
    assert root_url(1) == f"http://127.0.1.2:{PORT}/p/0"


def test_small_pages_link_a_few_pages_forward_and_one_back() -> None:
    site = Site(hosts=2, pages=10)
    assert site.links(0, 0) == ["/p/1", "/p/2", "/p/3", "/p/0"]
    assert site.links(1, 8) == ["/p/9", "/p/7"]
    assert len(site.page(0, 5)) < 400


def test_realistic_pages_are_about_30_kb_with_50_links_most_to_their_own_host() -> None:
    site = Site(hosts=200, pages=50, realistic=True)
    for host, i in ((0, 0), (7, 31), (199, 49)):
        body = site.page(host, i)
        hrefs = site.links(host, i)
        assert 29_000 <= len(body) <= 30_500
        assert len(hrefs) == 50 and body.count(b"<a href=") == 50
        hosts = [urlsplit(urljoin(root_url(host), h)).hostname for h in hrefs]
        assert hosts.count(host_address(host)) >= 40
        assert set(hosts) - {host_address(host)} <= {host_address(h) for h in range(200)} | {
            "offsite.invalid"
        }
        assert any("#" in h for h in hrefs)


def test_every_page_of_either_mix_is_reachable_from_its_hosts_root_and_nothing_else_is_on_the_site() -> None:
    for site in (Site(hosts=3, pages=40), Site(hosts=3, pages=40, realistic=True)):
        seen, todo = set(), [root_url(h) for h in range(site.hosts)]
        while todo:
            url = todo.pop()
            if url in seen or urlsplit(url).hostname == "offsite.invalid":
                continue
            seen.add(url)
            parts = urlsplit(url)
            host = [host_address(h) for h in range(site.hosts)].index(parts.hostname or "")
            assert site.answer(host, parts.path).startswith(b"HTTP/1.1 200 OK")
            todo += [urljoin(url, h).split("#")[0] for h in site.links(host, int(parts.path[3:]))]
        assert seen == site.expected_urls()


def test_answers_404_outside_the_pages() -> None:
    site = Site(hosts=1, pages=3)
    for path in ("/p/3", "/", "/p/x", "/robots.txt"):
        assert site.answer(0, path).startswith(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def test_coverage_counts_missing_extra_and_repeated_pages_ignoring_fragments() -> None:
    expected = {"http://h/p/0", "http://h/p/1", "http://h/p/2"}
    exact = Coverage.of(["http://h/p/0", "http://h/p/1#section", "http://h/p/2"], expected)
    assert exact == Coverage(pages=3, missing=0, extra=0, repeats=0) and exact.status == "ok"
    off = Coverage.of(["http://h/p/0", "http://h/p/0", "http://h/p/9"], expected)
    assert off == Coverage(pages=1, missing=2, extra=1, repeats=1)
    assert off.status == "MISSING 2, extra 1, repeated 1"


def test_the_bound_is_every_allowed_slot_busy_one_latency_per_page() -> None:
    assert bound(64, 200, 2, 0.2) == 320
    assert bound(256, 200, 2, 0.2) == 1280
    assert bound(1000, 200, 2, 0.2) == 2000  # per-host slots run out before C


@dataclass(frozen=True)
class WithoutProcesses:
    parser: str = "bs4"
    robots: bool = True


@dataclass(frozen=True)
class WithProcesses:
    parser: str = "bs4"
    robots: bool = True
    frontier: str = "sqlite"
    processes: int | str = "auto"

    def __post_init__(self) -> None:
        if self.frontier == "memory" and self.processes != 1:
            raise ValueError("frontier memory: only one process")


def test_without_a_processes_field_one_process_runs_and_two_says_not_built() -> None:
    rows = crawlpool_rows(["bs4", "lxml"], None, WithoutProcesses)
    assert [(r.parser, r.processes, r.args, r.unavailable is None) for r in rows] == [
        ("bs4", "1", (), True),
        ("bs4", "2", (), False),
        ("lxml", "1", (), True),
        ("lxml", "2", (), False),
    ]
    assert "no `processes`" in str(rows[1].unavailable)


def test_with_a_processes_field_each_count_is_passed_unless_the_config_refuses_it() -> None:
    rows = crawlpool_rows(["lxml"], None, WithProcesses)
    assert [(r.args, r.unavailable) for r in rows] == [
        (("--processes", "1"), None),
        (("--processes", "2"), None),
    ]
    refused = crawlpool_rows(["lxml"], "memory", WithProcesses)
    assert refused[0].unavailable is None
    assert "only one process" in str(refused[1].unavailable)


def test_scaling_says_two_processes_against_one_per_parser_and_concurrency() -> None:
    rates = {("bs4", "1", 256): 600.0, ("bs4", "2", 256): 1020.0, ("lxml", "2", 64): 300.0}
    assert scaling_lines(rates) == ["- bs4, C=256: 2 processes / 1 = 1.70x"]
