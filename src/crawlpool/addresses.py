"""Which IP addresses a crawl may connect to: the guard against server-side request forgery.

Links are written by strangers. A page that links to `http://169.254.169.254/latest/meta-data/` (a cloud
machine's credentials), `http://127.0.0.1:6379/` or `http://10.0.0.5/admin` must not make the crawler
fetch it and store the answer. So an address in one of the ranges below is refused, unless

    1. the host name being connected to is a seed's host (`localhost`, `intranet.lan`, `10.0.0.5`), or
    2. the address is one a seed's host was seen to resolve to (so `127.0.0.1` seeds let a link to
       `http://localhost:PORT/` reach 127.0.0.1, though not ::1 if only the seed is on 127.0.0.1), or
    3. the user allowed it: `allow_private` (every range) or `allow_address` (these networks).

Refused ranges, first match names the reason ("169.254.169.254 is link-local"):

    IPv4                                        IPv6
    0.0.0.0/8        unspecified ("this net")   ::/128           unspecified
    10.0.0.0/8       private (RFC 1918)         ::1/128          loopback
    100.64.0.0/10    carrier-grade NAT          ::ffff:0:0/96    IPv4-mapped: the IPv4 address decides
    127.0.0.0/8      loopback                   64:ff9b::/96     NAT64: the embedded IPv4 decides
    169.254.0.0/16   link-local (cloud          64:ff9b:1::/48   private (local-use NAT64)
                     metadata at .169.254)      2001::/32        Teredo: the client's IPv4 decides
    172.16.0.0/12    private (RFC 1918)         2002::/16        6to4: the embedded IPv4 decides
    192.0.0.0/24     reserved (IETF protocol)   2001:db8::/32    documentation
    192.0.2.0/24     documentation              100::/64         reserved (discard-only)
    192.168.0.0/16   private (RFC 1918)         ::/8             reserved (IPv4-compatible and others)
    198.18.0.0/15    benchmarking               fc00::/7         unique-local
    198.51.100.0/24  documentation              fe80::/10        link-local
    203.0.113.0/24   documentation              fec0::/10        site-local (deprecated)
    224.0.0.0/4      multicast                  ff00::/8         multicast
    240.0.0.0/4      reserved (incl. broadcast)

Anything else that Python's `ipaddress` does not call global is refused as "reserved" too, so a range
missing from this table fails closed. The table is explicit (not `is_private` alone) because those
properties changed between Python versions and say nothing of multicast or carrier-grade NAT.

Everything here is pure: `refusal` decides one address; `AddressGuard` adds the one piece of state, the
addresses seed hosts resolved to. The connector in `guarded.py` applies it to every address the crawl
connects to (see there for why that covers redirects, robots.txt and DNS rebinding).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Set
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# (network, kind), checked in order; the first match is the reason.
REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),
)
REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "private"),
    (_V6("100::/64"), "reserved"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("::/8"), "reserved"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)
_NAT64 = _V6("64:ff9b::/96")


def parse_address(text: str) -> IPAddress | None:
    """The IP address `text` spells (IPv6 with or without brackets, a `%zone` kept), or None for a name."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def parse_network(text: str) -> IPNetwork:
    """A network from `10.0.0.0/8`, `fd00::/8` or a single address (`10.0.0.5` is 10.0.0.5/32).
    Raises ValueError with a message fit for the user, for a typo and for host bits set after the
    prefix (`10.0.0.5/8` is refused rather than silently widened to 10.0.0.0/8)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or network ({exc})") from None
        raise ValueError(f"{text!r} has host bits set; did you mean {loose}?") from None


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 one carries and how, when the packet would end up at it."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    if address.teredo is not None:
        return address.teredo[1], "Teredo"
    return None


def range_kind(address: IPAddress) -> str | None:
    """What special range `address` is in ("loopback", "private", "link-local", ...; for an IPv6
    address carrying an IPv4 one, that one's kind and how it is carried), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        address = address if address.scope_id is None else ipaddress.IPv6Address(str(address).split("%")[0])
        embedded = _embedded_v4(address)
        if embedded is not None:
            inner, how = embedded
            kind = range_kind(inner)
            return None if kind is None else f"{kind} ({how} {inner})"
        for network6, kind in REFUSED_V6:
            if address in network6:
                return kind
    else:
        for network4, kind in REFUSED_V4:
            if address in network4:
                return kind
    return None if address.is_global else "reserved"


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """What the user allowed beyond the public internet: `allow_private` (everything) or these networks."""

    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_options(cls, allow_private: bool, allow_address: Iterable[str]) -> AddressPolicy:
        """From the config's `allow_private` and `allow_address`; raises ValueError for a bad network."""
        return cls(allow_private, tuple(parse_network(text) for text in allow_address))

    def allows(self, address: IPAddress) -> bool:
        if self.allow_private:
            return True
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)  # --allow-address 10.0.0.0/8 covers ::ffff:10.0.0.5
        return any(
            a in network for a in candidates for network in self.allowed if a.version == network.version
        )


def refusal(address: IPAddress, policy: AddressPolicy, trusted: Set[IPAddress] = frozenset()) -> str | None:
    """Why the crawl must not connect to `address` ("10.0.0.5 is private"), or None when it may: a
    public address, one in `trusted` (seed hosts' addresses), or one the policy allows."""
    kind = range_kind(address)
    if kind is None or address in trusted or policy.allows(address):
        return None
    return f"{address} is {kind}"


def _host_name(host: str) -> str:
    """A host as compared with seed hosts: lowercase, no brackets, no trailing dot."""
    return host.strip("[]").rstrip(".").lower()


@dataclass(slots=True)
class AddressGuard:
    """The crawl's guard: its policy, its seeds' hosts, and the addresses those hosts resolved to.

    `check` is called with every host name and the addresses it resolved to, before connecting."""

    policy: AddressPolicy
    seed_hosts: frozenset[str] = frozenset()
    trusted: set[IPAddress] = field(default_factory=set)

    @classmethod
    def for_seeds(cls, seed_hosts: Iterable[str], policy: AddressPolicy) -> AddressGuard:
        hosts = frozenset(_host_name(host) for host in seed_hosts)
        literal = {address for host in hosts if (address := parse_address(host)) is not None}
        return cls(policy, hosts, literal)

    def check(self, host: str, addresses: Iterable[str]) -> tuple[list[str], str | None]:
        """The addresses of `host` the crawl may connect to, and the reason for the first refused one
        (None when none was refused). A seed host may reach all its addresses, which become trusted."""
        resolved = [(text, parse_address(text)) for text in addresses]
        if _host_name(host) in self.seed_hosts:
            self.trusted.update(address for _, address in resolved if address is not None)
            return [text for text, _ in resolved], None
        allowed: list[str] = []
        reason: str | None = None
        for text, address in resolved:
            why = (
                f"{text} is not an IP address"
                if address is None
                else refusal(address, self.policy, self.trusted)
            )
            if why is None:
                allowed.append(text)
            elif reason is None:
                reason = why
        return allowed, reason
