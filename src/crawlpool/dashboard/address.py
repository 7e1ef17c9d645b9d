"""Where the dashboard listens and whether it needs a token (no imports of the crawl: config uses it).

`--dashboard [HOST:]PORT` listens on 127.0.0.1 unless HOST says otherwise. On a loopback address no token
is needed (only this machine can connect); on any other address one is required: `--dashboard-token`,
or a generated one, which is part of the URL printed. Port 0 picks a free port (the printed URL says
which).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass

from crawlpool.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str) -> Address:
    """`8080`, `127.0.0.1:8080`, `0.0.0.0:8080` or `[::1]:8080`. Raises ConfigError naming the value."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(
            f"dashboard: expected [HOST:]PORT such as 8080 or 127.0.0.1:8080, got {text!r}"
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"dashboard: port must be from 0 to 65535, got {port}")
    return Address(host, port)


def token_for(address: Address, token: str | None) -> str | None:
    """The token the dashboard requires: the given one, or on a non-loopback address a new one."""
    if token is not None:
        if not token or any(c.isspace() for c in token):
            raise ConfigError("dashboard_token: must be a non-empty string without spaces")
        return token
    return None if address.loopback else secrets.token_urlsafe(18)
