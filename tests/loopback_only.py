"""The test session's safety net: no socket of the test process connects or sends outside loopback.

Tests crawl only loopback sites, and the address guard's ranges are tested on the guard function, never
by crawling them. This net holds even when the guard (or a test) is broken: `install` wraps
`socket.socket.connect`, `connect_ex` and `sendto` (asyncio, aiohappyeyeballs, redis and aiohttp's test
client all connect through them) so that an address outside 127.0.0.0/8 and ::1 is refused before any
packet leaves, and remembered; conftest fails the test that caused it. Unix sockets pass. Name lookups
(getaddrinfo, in libc) are not connections and are not covered; tests name only loopback and `.invalid`
hosts. Subprocesses (CLI tests) are not covered either: they get their own interpreter.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

violations: list[str] = []
_installed = False


def is_loopback(address: object) -> bool:
    """True for a loopback (host, port, ...) address, and for anything not an IP address tuple (a Unix
    socket path)."""
    if not isinstance(address, tuple) or not address:
        return True
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback  # 127.0.0.0/8 and ::1


def _refuse(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address):
        violations.append(f"connection to {address!r}")
        raise PermissionError(errno.EACCES, f"loopback-only test session: refused {address!r}")


def install() -> None:
    """Wrap the socket methods (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto

    def connect(self: socket.socket, address: Any) -> None:
        _refuse(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _refuse(self, address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        _refuse(self, args[-1])
        return real_sendto(self, data, *args)

    socket.socket.connect = connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign, assignment]
    socket.socket.sendto = sendto  # type: ignore[method-assign, assignment]
