"""The host slots one worker of a Redis frontier leases, as far as it knows (see frontier/redis.py):
each slot's fencing token, when a call last pushed its lease deadline forward, and which have no URL
out. Plain bookkeeping in this process; the truth is in Redis, and every script checks the token."""

from __future__ import annotations

import time
from collections.abc import Iterable

from crawlpool.frontier.redis_keys import slot_host


class HeldSlots:
    """Slot → token of every slot this worker leases, with its freshness and whether it is idle."""

    def __init__(self) -> None:
        self.tokens: dict[str, int] = {}  # slot → token of every slot this worker leases
        # slot → monotonic time just before the last call that pushed its lease deadline forward
        self.fresh: dict[str, float] = {}
        self.idle: dict[str, None] = {}  # held slots with no URL out: served first by lease()

    def hold(self, slots: Iterable[tuple[str, int]], sent_at: float) -> None:
        """Newly leased (slot, token) pairs, by a call sent at monotonic time `sent_at`."""
        for slot, token in slots:
            self.tokens[slot] = token
            self.fresh[slot] = sent_at

    def touch(self, slots: Iterable[str], sent_at: float) -> None:
        """A call sent at `sent_at` pushed these slots' deadlines forward."""
        self.fresh.update((slot, sent_at) for slot in slots)

    def adopt(self, slot: str, token: int) -> None:
        """The slot is this worker's under `token`, with a URL out (an ack handed out the next one)."""
        self.tokens[slot] = token

    def keep(self, slot: str, token: int) -> None:
        """The slot's URL ended and the slot stays this worker's, idle, under `token`."""
        self.tokens[slot] = token
        self.idle[slot] = None

    def claim_idle(self, n: int) -> list[tuple[str, int]]:
        """Up to n held idle slots, taken out of the idle set before any await so that two
        concurrent lease() calls never serve the same slot."""
        claimed: list[tuple[str, int]] = []
        while self.idle and len(claimed) < n:
            slot = next(iter(self.idle))
            del self.idle[slot]
            claimed.append((slot, self.tokens[slot]))
        return claimed

    def age_s(self, token: int, host: str) -> float | None:
        """Seconds since the deadline of the slot of `host` held under `token` was last pushed
        forward (inf if never), or None when no such slot is held."""
        for slot, held in self.tokens.items():
            if held == token and slot_host(slot) == host:
                return time.monotonic() - self.fresh.get(slot, float("-inf"))
        return None

    def forget(self, slot: str, token: int) -> None:
        if self.tokens.get(slot) == token:
            del self.tokens[slot]
            self.idle.pop(slot, None)

    def forget_token(self, token: int) -> None:
        for slot, held in list(self.tokens.items()):
            if held == token:
                self.forget(slot, held)

    def clear(self) -> None:
        self.tokens.clear()
        self.idle.clear()
