"""Joining a shared (Redis) crawl that is already finished: said in one line, before any work.

A worker that joins a finished crawl with the same definition would find nothing to lease and end at
once with a summary of zero pages, which reads like a failure. This looks first, without joining.
"""

from __future__ import annotations

import json

from crawlpool.config import CrawlConfig
from crawlpool.errors import ConfigError, FrontierError
from crawlpool.frontier import Politeness, is_redis, open_frontier, without_password

CRAWL_IDENTITY_KEY = "crawl"


def crawl_identity(cfg: CrawlConfig, seeds: list[str]) -> dict[str, object]:
    """What defines a crawl: api._begin stores it (JSON) under CRAWL_IDENTITY_KEY and refuses another."""
    identity = {"seeds": sorted(seeds), "scope": cfg.scope, "include": cfg.include, "exclude": cfg.exclude}
    decoded: dict[str, object] = json.loads(json.dumps(identity))  # tuples compare as the lists stored
    return decoded


async def finished_notice(cfg: CrawlConfig, seeds: list[str]) -> str | None:
    """`crawl X at URL is already finished: ...; nothing to do` when `cfg` joins a Redis crawl that is
    finished and has the same definition; None otherwise: not Redis, `--resume` (which repairs the
    manifest first), no such crawl or Redis unreachable, work left, or another definition (joining
    then says what to do)."""
    if not is_redis(cfg.frontier) or cfg.resume or cfg.crawl_id is None:
        return None
    try:
        frontier = await open_frontier(
            cfg.frontier,
            Politeness(cfg.per_host, cfg.delay_s),
            output=cfg.output,
            crawl_id=cfg.crawl_id,
            observe=True,
        )
    except ConfigError:
        return None  # the join itself reports an unreachable Redis; a new crawl id is simply created
    try:
        status = await frontier.status()
        stored = await frontier.get_meta(CRAWL_IDENTITY_KEY)
    except FrontierError:
        return None  # Redis failed between two calls: the join meets it again and says so
    finally:
        await frontier.aclose()
    # done > 0: a crawl whose first worker has not added its seeds yet also has nothing queued.
    if status.state != "finished" or not status.done or stored is None:
        return None
    try:
        if json.loads(stored) != crawl_identity(cfg, seeds):
            return None
    except ValueError:
        return None
    failed = sum((status.failures or {}).values())
    return (
        f"crawl {cfg.crawl_id} at {without_password(cfg.frontier)} is already finished: "
        f"{status.done:,} URLs done ({failed:,} failed); nothing to do"
    )
