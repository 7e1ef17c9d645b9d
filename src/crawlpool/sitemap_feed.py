"""One sitemap being read: its body streamed into the parser, its entries queued a batch at a time.

The engine fetches a `sitemap` request with `Fetcher.fetch(url, sink=feed.feed)`: each chunk of the
body goes to the parser as it arrives, and every `BATCH` entries are turned into requests by
`policy.sitemap_rules` and handed to the frontier. So neither the body nor the list of URLs is ever held
whole: a 50 MB sitemap costs a chunk, a batch and the parser's current element. Queueing is idempotent
(the frontier drops what it has seen), so a sitemap fetched again after a failure mid-body, or after a
resume, adds nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from crawlpool.frontier.base import Request
from crawlpool.policy.actions import SettleTrap
from crawlpool.policy.rules import Rules
from crawlpool.policy.sitemap_rules import sitemap_entries
from crawlpool.sitemaps import SitemapEntry, SitemapParser

log = logging.getLogger(__name__)

BATCH = 1000  # entries queued per frontier round trip


class SitemapFeed:
    """Reads one sitemap for `request`: `feed` is the fetcher's sink, `finish` ends it."""

    def __init__(
        self,
        request: Request,
        rules: Rules,
        *,
        queue: Callable[[Sequence[Request]], Awaitable[None]],
        settle: Callable[[SettleTrap], Awaitable[None]],
    ) -> None:
        self._request = request
        self._rules = rules
        self._queue = queue
        self._settle = settle
        self.parser = SitemapParser()
        self._pending: list[SitemapEntry] = []
        self.dropped = 0

    async def feed(self, chunk: bytes) -> bool:
        """Parse a chunk of the body; False once the parser wants no more (a limit, broken XML)."""
        self._pending += self.parser.feed(chunk)
        if len(self._pending) >= BATCH:
            await self._flush()
        return not self.parser.full

    async def finish(self, *, complete: bool) -> None:
        """The fetch has ended; `complete`: the body arrived whole (else the parser is not asked to
        close, which would call a cut body malformed: the fetch's own error says what happened)."""
        if complete:
            self._pending += self.parser.close()
        await self._flush()
        if self.parser.problem is not None:
            log.warning("%s: %s", self._request.url, self.parser.problem)
        if self.dropped:
            log.info(
                "%s: %d entries not queued (not a URL, out of scope, filtered, or a sitemap nested too deep)",
                self._request.url,
                self.dropped,
            )

    async def _flush(self) -> None:
        if not self._pending:
            return
        requests, traps, dropped = sitemap_entries(self._request, self._pending, self._rules)
        self._pending = []
        self.dropped += dropped
        for trap in traps:
            await self._settle(trap)
        if requests:
            await self._queue(requests)
