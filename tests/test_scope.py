"""Scope: host, domain and any modes, include/exclude filters, registered domains."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlpool import scope as scope_module
from crawlpool.scope import Scope, ScopeMode, registered_domain
from crawlpool.urls import normalize_url

SEEDS = ["https://www.example.co.uk/start", "http://127.0.0.1:8000/", "http://localhost:8080/"]

# url -> (host, domain, any)
CASES = {
    "https://www.example.co.uk/other": (True, True, True),
    "http://www.example.co.uk:8443/x": (True, True, True),  # scheme and port are ignored
    "https://www.example.co.uk./x": (True, True, True),  # so is a trailing dot
    "https://example.co.uk/": (False, True, True),  # www. is not stripped in host mode
    "https://a.b.example.co.uk/": (False, True, True),
    "https://other.co.uk/": (False, False, True),
    "https://co.uk/": (False, False, True),
    "https://www.example.com/": (False, False, True),
    "http://127.0.0.1:9000/": (True, True, True),
    "http://127.0.0.2:8000/": (False, False, True),  # an IP has no parent domain
    "http://localhost/": (True, True, True),
    "http://localhost:9090/x": (True, True, True),
    "http://app.localhost:8080/": (False, False, True),
    "http://[::1]:8080/": (False, False, True),
}


@pytest.mark.parametrize("mode", ["host", "domain", "any"])
@pytest.mark.parametrize(("url", "expected"), CASES.items())
def test_modes(mode: ScopeMode, url: str, expected: tuple[bool, bool, bool]) -> None:
    assert normalize_url(url) == url
    allowed = dict(zip(("host", "domain", "any"), expected, strict=True))
    assert Scope(SEEDS, mode).allows(url) is allowed[mode]


def test_default_mode_is_host() -> None:
    scope = Scope(["https://example.com/"])
    assert scope.allows("http://example.com:8080/")
    assert not scope.allows("https://www.example.com/")


def test_ipv6_seed() -> None:
    scope = Scope(["http://[::1]:8080/"], "domain")
    assert scope.allows("http://[::1]/x")
    assert not scope.allows("http://[::2]:8080/")


def test_private_suffixes_separate_sites() -> None:
    scope = Scope(["https://alice.github.io/"], "domain")
    assert scope.allows("https://docs.alice.github.io/")
    assert not scope.allows("https://bob.github.io/")


def test_seeds_are_normalized() -> None:
    scope = Scope(["HTTPS://Bücher.DE:443"])
    assert scope.allows("http://xn--bcher-kva.de/x")


def test_no_seeds() -> None:
    assert not Scope([], "host").allows("https://example.com/")
    assert not Scope([], "domain").allows("https://example.com/")
    assert Scope([], "any").allows("https://example.com/")


def test_include_and_exclude() -> None:
    scope = Scope(
        ["https://example.com/"], include=[r"/docs/", r"/blog/"], exclude=[r"\.pdf$", r"[?&]print="]
    )
    assert scope.allows("https://example.com/docs/a")
    assert scope.allows("https://example.com/x/blog/b")  # re.search: anywhere in the URL
    assert not scope.allows("https://example.com/about")  # no include matches
    assert not scope.allows("https://example.com/docs/a.pdf")  # exclude wins over include
    assert not scope.allows("https://example.com/docs/a?print=1")
    assert not scope.allows("https://other.com/docs/a")  # filters come after scope


def test_remembered_verdicts_stay_right_past_the_cache_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scope_module, "VERDICTS_MAX", 3)
    scope = Scope(["https://example.com/"], include=[r"/docs/"], exclude=[r"\.pdf$"])
    urls = {
        "https://example.com/docs/a": True,
        "https://example.com/docs/a.pdf": False,
        "https://example.com/about": False,
        "https://other.com/docs/a": False,
        "https://example.com/docs/b": True,
    }
    for _ in range(3):  # asked again and again, while the cache fills, empties and fills again
        assert {url: scope.allows(url) for url in urls} == urls
    assert len(scope._verdicts) <= 3


@pytest.mark.parametrize("mode", ["host", "domain"])
def test_one_scope_remembers_origins_and_answers_each_url_as_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch, mode: ScopeMode
) -> None:
    """The verdict is remembered per origin, so the userinfo trick and a longer name that starts with
    a seed's must not share a seed's answer, even once the cache fills and starts over."""
    monkeypatch.setattr(scope_module, "VERDICTS_MAX", 4)
    tricky = {
        "https://www.example.co.uk@evil.com/": False,  # the host is evil.com
        "https://user@www.example.co.uk/": True,
        "https://www.example.co.uk.evil.com/": False,
    }
    expected = {url: dict(zip(("host", "domain", "any"), e, strict=True))[mode] for url, e in CASES.items()}
    expected |= tricky
    scope = Scope(SEEDS, mode)
    for _ in range(3):
        assert {url: scope.allows(url) for url in expected} == expected
    many = Scope(SEEDS, mode)
    assert all(many.allows(f"http://127.0.0.1:9000/page{i}.html") for i in range(100))
    assert len(many._origins) == 1 and not many._verdicts  # one entry for a whole site


def test_exclude_only() -> None:
    scope = Scope(["https://example.com/"], "any", exclude=[r"^https://ads\."])
    assert scope.allows("https://example.com/ads/")
    assert not scope.allows("https://ads.example.com/")


def test_filters_see_the_full_url() -> None:
    scope = Scope(["https://example.com/"], include=[r"^https://example\.com/\?a=1&b=2$"])
    assert scope.allows("https://example.com/?a=1&b=2")


@pytest.mark.parametrize(
    ("include", "exclude", "bad"),
    [(["ok", "a("], [], "a("), ([], ["[z-a]"], "[z-a]"), ([], ["*x"], "*x")],
)
def test_invalid_regex(include: list[str], exclude: list[str], bad: str) -> None:
    kind = "include" if include else "exclude"
    with pytest.raises(ValueError, match=r"invalid (include|exclude) pattern") as info:
        Scope(["https://example.com/"], include=include, exclude=exclude)
    message = str(info.value)
    assert message.startswith(f"invalid {kind} pattern {bad!r}: ")
    assert "\n" not in message
    assert any(word in message for word in ("missing", "bad character range", "nothing to repeat"))


def test_invalid_seed_and_mode() -> None:
    with pytest.raises(ValueError, match=r"seed 'mailto:a@b\.c' is not an http"):
        Scope(["mailto:a@b.c"])
    with pytest.raises(ValueError, match="unknown scope mode 'site'"):
        Scope(["https://example.com/"], "site")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("example.com", "example.com"),
        ("a.b.example.com", "example.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("example.co.uk", "example.co.uk"),
        ("WWW.Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("x.alice.github.io", "alice.github.io"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("www.xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("co.uk", "co.uk"),  # a public suffix has nothing above it
        ("uk", "uk"),
        ("intranet", "intranet"),
        ("a.b.intranet", "b.intranet"),  # unknown TLDs count as one-label suffixes
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "[::1]"),
        ("2001:db8::1", "2001:db8::1"),
    ],
)
def test_registered_domain(host: str, domain: str) -> None:
    assert registered_domain(host) == domain


labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=6).filter(
    lambda label: not label.startswith("-") and not label.endswith("-")
)
suffixes = st.sampled_from(["com", "co.uk", "github.io", "de", "xn--p1ai", "example"])
hosts = st.builds("{}.{}".format, st.lists(labels, min_size=1, max_size=3).map(".".join), suffixes)


@given(hosts, hosts, st.sampled_from(["http", "https"]), st.sampled_from(["", ":8080"]))
def test_modes_nest(seed_host: str, host: str, scheme: str, port: str) -> None:
    seed = f"https://{seed_host}/"
    url = f"{scheme}://{host}{port}/p"
    in_host = Scope([seed], "host").allows(url)
    in_domain = Scope([seed], "domain").allows(url)
    assert in_host <= in_domain <= Scope([seed], "any").allows(url)
    assert in_host is (host == seed_host)
    assert in_domain is (registered_domain(host) == registered_domain(seed_host))
    assert Scope([seed], "domain").allows(f"{scheme}://sub.{host}{port}/") is in_domain
