"""The address guard (addresses.py, guarded.py): which addresses a crawl connects to.

Every range is decided on the guard function itself, from a table. The crawls below use loopback only:
a seed on 127.0.0.1 and other sites on 127.0.0.2 and ::1, which the guard refuses for non-seed hosts
just as it would 10.0.0.5 or 169.254.169.254. conftest's safety net fails any test that tries to
connect outside loopback, whatever the guard does.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.connector
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from crawlpool import CrawlConfig, crawl
from crawlpool.addresses import (
    AddressGuard,
    AddressPolicy,
    parse_address,
    parse_network,
    range_kind,
    refusal,
)
from crawlpool.cli import build_parser, main
from crawlpool.errors import ConfigError
from crawlpool.fetch import Fetcher, FetchError, Response
from crawlpool.frontier import Politeness
from crawlpool.frontier.memory import MemoryFrontier
from crawlpool.guarded import GuardedConnector
from crawlpool.records import Page
from crawlpool.robots import ALLOW_ALL, RobotsCache
from tests import loopback_only
from tests.polite_site import PoliteSite, page, text

Server = Callable[..., Awaitable[TestServer]]
ThreeSites = tuple[PoliteSite, str, PoliteSite, str, PoliteSite, str]

# ---------------------------------------------------------------------------------------------------
# The guard function: every range, no packet sent.

REFUSED = [
    # IPv4
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.5", "private"),
    ("10.255.255.255", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"),
    ("127.0.0.2", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "documentation"),
    ("192.168.1.1", "private"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fd00::1", "unique-local"),
    ("fc00::1", "unique-local"),
    ("fdff:ffff::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%2", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff05::2", "multicast"),
    ("2001:db8::1", "documentation"),
    ("100::1", "reserved"),
    ("::127.0.0.1", "reserved"),  # IPv4-compatible, deprecated
    ("64:ff9b:1::10", "private"),
    # IPv4 carried in IPv6: the IPv4 address decides
    ("::ffff:169.254.169.254", "link-local (IPv4-mapped 169.254.169.254)"),
    ("::ffff:127.0.0.1", "loopback (IPv4-mapped 127.0.0.1)"),
    ("::ffff:10.0.0.5", "private (IPv4-mapped 10.0.0.5)"),
    ("64:ff9b::a00:5", "private (NAT64 10.0.0.5)"),
    ("64:ff9b::a9fe:a9fe", "link-local (NAT64 169.254.169.254)"),
    ("2002:a00:5::1", "private (6to4 10.0.0.5)"),
    ("2002:7f00:1::", "loopback (6to4 127.0.0.1)"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffa", "private (Teredo 10.0.0.5)"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below carrier-grade NAT
    "100.128.0.0",  # just above it
    "172.15.255.255",  # just outside 172.16.0.0/12
    "172.32.0.0",
    "169.253.255.255",
    "223.255.255.255",  # just below multicast
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("text", "kind"), REFUSED)
def test_refused_ranges(text: str, kind: str) -> None:
    address = ipaddress.ip_address(text)
    assert range_kind(address) == kind
    assert refusal(address, AddressPolicy()) == f"{address} is {kind}"


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text: str) -> None:
    address = ipaddress.ip_address(text)
    assert range_kind(address) is None
    assert refusal(address, AddressPolicy()) is None


def test_the_reason_reads_as_the_issue_asks() -> None:
    policy = AddressPolicy()
    assert refusal(ipaddress.ip_address("169.254.169.254"), policy) == "169.254.169.254 is link-local"
    assert refusal(ipaddress.ip_address("10.0.0.5"), policy) == "10.0.0.5 is private"


@pytest.mark.parametrize(("text", "kind"), REFUSED)
def test_allow_private_allows_every_range(text: str, kind: str) -> None:
    assert refusal(ipaddress.ip_address(text), AddressPolicy(allow_private=True)) is None


@pytest.mark.parametrize(
    ("networks", "address", "allowed"),
    [
        (["127.0.0.0/8"], "127.0.0.2", True),
        (["127.0.0.0/8"], "::1", False),
        (["127.0.0.0/8"], "10.0.0.5", False),
        (["10.0.0.0/8"], "10.0.0.5", True),
        (["10.0.0.0/8"], "::ffff:10.0.0.5", True),  # the mapped IPv4 address is the one reached
        (["10.0.0.5"], "10.0.0.5", True),
        (["10.0.0.5"], "10.0.0.6", False),
        (["fd00::/8"], "fd00::1", True),
        (["fd00::/8"], "fc00::1", False),
        (["::1"], "::1", True),
        (["169.254.0.0/16"], "169.254.169.254", True),
        ([], "169.254.169.254", False),
    ],
)
def test_allow_address_allows_its_networks_only(networks: list[str], address: str, allowed: bool) -> None:
    policy = AddressPolicy.from_options(False, networks)
    assert (refusal(ipaddress.ip_address(address), policy) is None) is allowed


def test_trusted_addresses_pass() -> None:
    trusted = {ipaddress.ip_address("10.0.0.5")}
    assert refusal(ipaddress.ip_address("10.0.0.5"), AddressPolicy(), trusted) is None
    assert refusal(ipaddress.ip_address("10.0.0.6"), AddressPolicy(), trusted) == "10.0.0.6 is private"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0/33", "is not an IP address or network"),
        ("ten.0.0.0/8", "is not an IP address or network"),
        ("", "is not an IP address or network"),
        ("10.0.0.5/8", "has host bits set; did you mean 10.0.0.0/8?"),
        ("fd00::1/8", "has host bits set; did you mean fd00::/8?"),
    ],
)
def test_bad_networks_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        parse_network(text)
    with pytest.raises(ConfigError, match="allow_address: "):
        CrawlConfig(allow_address=(text,))


def test_config_checks_the_guard_options() -> None:
    with pytest.raises(ConfigError, match="allow_address: expected a list"):
        CrawlConfig(allow_address="10.0.0.0/8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="allow_private: expected true or false"):
        CrawlConfig(allow_private="yes")  # type: ignore[arg-type]
    assert CrawlConfig(allow_address=["10.0.0.0/8"]).allow_address == ("10.0.0.0/8",)  # type: ignore[arg-type]


def test_parse_address_reads_literals_only() -> None:
    assert parse_address("[::1]") == ipaddress.ip_address("::1")
    assert parse_address("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert parse_address("localhost") is None


def test_guard_lets_seed_hosts_anywhere_and_trusts_what_they_resolved_to() -> None:
    guard = AddressGuard.for_seeds(["intranet.test", "10.9.9.9"], AddressPolicy())
    # Not a seed host: only the public address of a mixed answer is kept.
    assert guard.check("evil.test", ["10.0.0.5", "8.8.8.8"]) == (["8.8.8.8"], "10.0.0.5 is private")
    assert guard.check("evil.test", ["10.0.0.5", "::1"]) == ([], "10.0.0.5 is private")
    # A seed given as an address trusts that address, whatever name leads to it.
    assert guard.check("alias.test", ["10.9.9.9"]) == (["10.9.9.9"], None)
    # A seed host name may be anywhere (case and a trailing dot do not matter) ...
    assert guard.check("Intranet.Test.", ["10.1.1.1", "fd00::1"]) == (["10.1.1.1", "fd00::1"], None)
    # ... and what it resolved to is trusted from then on.
    assert guard.check("other.test", ["fd00::1"]) == (["fd00::1"], None)
    assert guard.check("other.test", ["fd00::2"]) == ([], "fd00::2 is unique-local")


def test_an_ipv6_seed_is_trusted_without_brackets() -> None:
    guard = AddressGuard.for_seeds(["::1"], AddressPolicy())
    assert guard.check("::1", ["::1"]) == (["::1"], None)
    assert guard.check("localhost", ["127.0.0.1", "::1"]) == (["::1"], "127.0.0.1 is loopback")


def test_an_unreadable_resolver_answer_is_not_connected_to() -> None:
    guard = AddressGuard.for_seeds([], AddressPolicy())
    assert guard.check("odd.test", ["not-an-address"]) == ([], "not-an-address is not an IP address")


# ---------------------------------------------------------------------------------------------------
# Crawls on loopback.


@pytest.fixture
def ipv6_loopback() -> None:
    """Skip the test when ::1 cannot be bound here (IPv6 disabled)."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"IPv6 loopback is unavailable: {exc}")


async def _serve(aiohttp_server: Server, site: PoliteSite, host: str) -> str:
    """Serve `site` on `host` (a loopback address) and give its base URL."""
    server = await aiohttp_server(site.app(), host=host)
    netloc = f"[{host}]" if ":" in host else host
    return f"http://{netloc}:{server.port}"


def _records(pages: list[Page]) -> dict[str, Page]:
    return {page.url: page for page in pages}


@pytest.fixture
async def three_sites(aiohttp_server: Server, ipv6_loopback: None) -> ThreeSites:
    """A seed site on 127.0.0.1 linking to a site on 127.0.0.2 and one on [::1]."""
    near, second, v6 = PoliteSite(), PoliteSite(), PoliteSite()
    second_url = await _serve(aiohttp_server, second, "127.0.0.2")
    v6_url = await _serve(aiohttp_server, v6, "::1")
    near_url = await _serve(aiohttp_server, near, "127.0.0.1")
    near.on("/", page(f"{second_url}/", f"{v6_url}/"))
    for site in (second, v6):
        site.on("/", page())
        site.on("/robots.txt", text("User-agent: *\nAllow: /\n"))
    return near, near_url, second, second_url, v6, v6_url


async def test_links_to_other_loopback_addresses_are_recorded_not_fetched(
    three_sites: ThreeSites, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, near_url, second, second_url, v6, v6_url = three_sites
    result = await crawl([f"{near_url}/"], output=tmp_path / "o", scope="any", frontier="memory", retries=2)
    records = _records(result.pages)
    assert records[f"{near_url}/"].status == 200
    for url, address in ((f"{second_url}/", "127.0.0.2"), (f"{v6_url}/", "::1")):
        record = records[url]
        assert record.error == f"blocked_address: {address} is loopback"
        assert (record.status, record.path, record.elapsed_ms) == (None, None, 0)
    assert second.hits == [] and v6.hits == []  # robots.txt included: nothing was sent
    assert result.stats.by_error == {"blocked_address": 2}
    assert result.stats.retries == 0  # a permanent refusal is not retried
    assert result.stats.requests == 1  # only the seed went out
    lines = (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 3  # each URL recorded once
    # Said once per host at the default verbosity, with the way to allow it.
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    host = second_url.split("/")[2]
    assert [m for m in warned if m.startswith(host)] == [
        f"{host}: not fetched: 127.0.0.2 is loopback, and only the seeds' hosts may be at such an "
        "address (--allow-address CIDR or --allow-private lift it); its URLs are recorded as blocked_address"
    ]


@pytest.mark.parametrize(
    ("options", "fetched", "blocked"),
    [
        ({"allow_private": True}, ("second", "v6"), ()),
        ({"allow_address": ("127.0.0.0/8",)}, ("second",), ("v6",)),
        ({"allow_address": ("127.0.0.0/8", "::1")}, ("second", "v6"), ()),
    ],
)
async def test_allowed_addresses_are_fetched(
    three_sites: ThreeSites,
    tmp_path: Path,
    options: dict[str, Any],
    fetched: tuple[str, ...],
    blocked: tuple[str, ...],
) -> None:
    _, near_url, second, second_url, v6, v6_url = three_sites
    result = await crawl([f"{near_url}/"], output=tmp_path / "o", scope="any", frontier="memory", **options)
    records = _records(result.pages)
    sites = {"second": (second, f"{second_url}/"), "v6": (v6, f"{v6_url}/")}
    for name in fetched:
        site, url = sites[name]
        assert records[url].status == 200 and records[url].path is not None
        assert [hit.path for hit in site.hits] == ["/robots.txt", "/"]
    for name in blocked:
        site, url = sites[name]
        assert records[url].error == "blocked_address: ::1 is loopback"
        assert site.hits == []


async def test_a_redirect_from_the_seed_host_to_another_loopback_address_is_refused(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    near, far = PoliteSite(), PoliteSite()
    far_url = await _serve(aiohttp_server, far, "127.0.0.2")
    near_url = await _serve(aiohttp_server, near, "127.0.0.1")
    near.on("/", page("/go"))
    near.on("/go", text("", status=302, headers={"Location": f"{far_url}/secret"}))
    far.on("/secret", text("the metadata service's credentials"))
    result = await crawl([f"{near_url}/"], output=tmp_path / "o", scope="any", frontier="memory")
    records = _records(result.pages)
    assert (records[f"{near_url}/go"].status, records[f"{near_url}/go"].error) == (302, None)
    assert records[f"{far_url}/secret"].error == "blocked_address: 127.0.0.2 is loopback"
    assert far.hits == []
    assert not any("credentials" in p.read_text() for p in (tmp_path / "o").rglob("*") if p.is_file())


class StubResolver(AbstractResolver):
    """Answers names from a table, one answer after another (the last one repeats), as DNS would."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        answers = self.names.get(host)
        if not answers:
            raise OSError(-2, "Name or service not known")
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": kind, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


def _resolve_with(monkeypatch: pytest.MonkeyPatch, resolver: StubResolver) -> None:
    """Make every connector the crawl builds use `resolver` (it builds its own session)."""
    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", lambda *a, **k: resolver)


async def test_a_name_resolving_to_a_refused_address_is_refused(
    aiohttp_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    near, far = PoliteSite(), PoliteSite()
    far_url = await _serve(aiohttp_server, far, "127.0.0.2")
    near_url = await _serve(aiohttp_server, near, "127.0.0.1")
    far_port, near_port = far_url.rsplit(":", 1)[1], near_url.rsplit(":", 1)[1]
    resolver = StubResolver({"inward.test": ["127.0.0.2"], "alias.test": ["127.0.0.1"]})
    near.on("/", page(f"http://inward.test:{far_port}/", f"http://alias.test:{near_port}/page"))
    near.on("/page", page())
    far.on("/", page())
    _resolve_with(monkeypatch, resolver)
    result = await crawl([f"{near_url}/"], output=tmp_path / "o", scope="any", frontier="memory")
    records = _records(result.pages)
    assert records[f"http://inward.test:{far_port}/"].error == "blocked_address: 127.0.0.2 is loopback"
    assert far.hits == []
    # A name that resolves to the seed's own address reaches the seed's server: nothing new is exposed.
    assert records[f"http://alias.test:{near_port}/page"].status == 200
    assert "inward.test" in resolver.asked  # the name went through the resolver, and was refused after


async def test_dns_rebinding_is_caught_on_the_next_connection(aiohttp_server: Server) -> None:
    """A name allowed on its first answer and refused on its second: every connection is checked."""
    far = PoliteSite()
    far.on("/", text("ok"))
    far_url = await _serve(aiohttp_server, far, "127.0.0.2")
    port = far_url.rsplit(":", 1)[1]
    resolver = StubResolver({"rebind.test": ["127.0.0.2", "127.0.0.3"]})
    guard = AddressGuard.for_seeds([], AddressPolicy.from_options(False, ["127.0.0.2"]))
    connector = GuardedConnector(guard, resolver=resolver, use_dns_cache=False, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        fetcher = Fetcher(session, timeout_s=5, max_bytes=1000)
        first = await fetcher.fetch(f"http://rebind.test:{port}/")
        second = await fetcher.fetch(f"http://rebind.test:{port}/")
    assert (first.status, first.body) == (200, b"ok")
    assert second.error is not None and str(second.error) == "blocked_address: 127.0.0.3 is loopback"
    assert not second.sent and not second.retryable
    assert len(far.hits) == 1


async def test_an_ip_literal_is_checked_though_aiohttp_skips_the_resolver(aiohttp_server: Server) -> None:
    far = PoliteSite()
    far.on("/", text("ok"))
    far_url = await _serve(aiohttp_server, far, "127.0.0.2")
    resolver = StubResolver({})
    connector = GuardedConnector(AddressGuard.for_seeds(["127.0.0.1"], AddressPolicy()), resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        response = await Fetcher(session, timeout_s=5, max_bytes=1000).fetch(f"{far_url}/")
    assert str(response.error) == "blocked_address: 127.0.0.2 is loopback"
    assert far.hits == [] and resolver.asked == []


async def test_a_robots_txt_redirect_to_a_refused_address_is_not_followed(
    aiohttp_server: Server, tmp_path: Path
) -> None:
    near, far = PoliteSite(), PoliteSite()
    far_url = await _serve(aiohttp_server, far, "127.0.0.2")
    near_url = await _serve(aiohttp_server, near, "127.0.0.1")
    near.on("/robots.txt", text("", status=301, headers={"Location": f"{far_url}/robots.txt"}))
    near.on("/", page("/a"))
    near.on("/a", page())
    far.on("/robots.txt", text("User-agent: *\nDisallow: /\n"))
    # With retries=0 an unreachable robots.txt would record both pages as `robots` at once.
    result = await crawl([f"{near_url}/"], output=tmp_path / "o", frontier="memory", retries=0)
    records = _records(result.pages)
    # Unavailable in RFC 9309's sense: allow all, at once (no waiting and asking again).
    assert (records[f"{near_url}/"].status, records[f"{near_url}/a"].status) == (200, 200)
    assert far.hits == []
    assert [hit.path for hit in near.hits].count("/robots.txt") == 1


async def test_a_refused_robots_txt_allows_all_but_is_not_the_crawls_state() -> None:
    """Another worker, or a --resume with --allow-private, must read that robots.txt itself."""
    calls: list[str] = []

    async def fetch(url: str) -> Response:
        calls.append(url)
        return Response(None, None, b"", None, None, 0, FetchError("blocked_address", "10.0.0.5 is private"))

    frontier = MemoryFrontier(Politeness())
    cache = RobotsCache(fetch, "crawlpool/1.0", store=frontier)
    assert await cache.rules_for("http://inner.test/a") is ALLOW_ALL
    assert await cache.rules_for("http://inner.test/b") is ALLOW_ALL  # kept in this process for the TTL
    assert calls == ["http://inner.test/robots.txt"]
    assert await frontier.robots("http://inner.test:80") is None


async def test_invalid_names_still_fail_as_dns(aiohttp_server: Server, tmp_path: Path) -> None:
    near = PoliteSite()
    near_url = await _serve(aiohttp_server, near, "127.0.0.1")
    near.on("/", page("http://nowhere.invalid/"))
    result = await crawl(
        [f"{near_url}/"], output=tmp_path / "o", scope="any", frontier="memory", retries=0, robots=False
    )
    assert _records(result.pages)["http://nowhere.invalid/"].error_code == "dns"


async def test_localhost_seed_reaches_its_server(aiohttp_server: Server, tmp_path: Path) -> None:
    """A seed named `localhost` (which may also resolve to ::1) is crawled with no flag."""
    near = PoliteSite()
    port = (await _serve(aiohttp_server, near, "127.0.0.1")).rsplit(":", 1)[1]
    near.on("/", page("/a"))
    near.on("/a", page())
    result = await crawl([f"http://localhost:{port}/"], output=tmp_path / "o", frontier="memory")
    assert [p.status for p in result.pages] == [200, 200]


# ---------------------------------------------------------------------------------------------------
# The command line and the safety net.


def test_the_flags_reach_the_config() -> None:
    from crawlpool.cli import _config_from_args

    args = build_parser().parse_args(
        [
            "crawl",
            "http://127.0.0.1:9/",
            "--allow-private",
            "--allow-address",
            "10.0.0.0/8",
            "--allow-address",
            "fd00::/8",
        ]
    )
    config = _config_from_args(args)
    assert config.allow_private is True
    assert config.allow_address == ("10.0.0.0/8", "fd00::/8")
    assert _config_from_args(build_parser().parse_args(["crawl", "x"])).allow_private is False


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`main` sets up logging on the root logger; put it back for the tests after this one."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
def test_a_bad_network_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["crawl", "http://127.0.0.1:9/", "-o", str(tmp_path / "o"), "--allow-address", "10.0.0.5/8"])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err == "crawlpool: error: argument --allow-address: '10.0.0.5/8' has host bits set; "
        "did you mean 10.0.0.0/8?\n"
    )
    assert not (tmp_path / "o").exists()


def test_the_test_session_cannot_leave_loopback() -> None:
    """0.0.0.0 would reach this machine if the net failed, never another one."""
    assert not loopback_only.is_loopback(("0.0.0.0", 9))
    assert not loopback_only.is_loopback(("10.0.0.5", 80))
    assert loopback_only.is_loopback(("127.0.0.2", 80)) and loopback_only.is_loopback(("::1", 80, 0, 0))
    assert loopback_only.is_loopback(("::ffff:127.0.0.1", 80, 0, 0))
    before = len(loopback_only.violations)
    with pytest.raises(PermissionError, match="loopback-only"), socket.socket() as sock:
        sock.connect(("0.0.0.0", 9))
    assert loopback_only.violations[before:] == ["connection to ('0.0.0.0', 9)"]
    del loopback_only.violations[before:]  # this test made it on purpose
