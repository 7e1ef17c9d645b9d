"""crawlpool: a polite, resumable, fast web crawler on asyncio and aiohttp.

from crawlpool import crawl
result = await crawl(["https://quotes.toscrape.com/"], output="output", max_pages=100)
"""

import logging

from crawlpool._version import __version__
from crawlpool.api import CrawlResult, Progress, crawl, crawl_sync, iter_crawl
from crawlpool.config import CrawlConfig
from crawlpool.errors import ConfigError, CrawlpoolError, SeedError, UsageError
from crawlpool.records import Page
from crawlpool.stats import CrawlStats

__all__ = [
    "ConfigError",
    "CrawlConfig",
    "CrawlResult",
    "CrawlStats",
    "CrawlpoolError",
    "Page",
    "Progress",
    "SeedError",
    "UsageError",
    "__version__",
    "crawl",
    "crawl_sync",
    "iter_crawl",
]

# A library never writes to stderr unless its caller configured logging: without this, Python's
# last-resort handler would print crawlpool's warnings (a stopped crawl, a host out of reach).
logging.getLogger("crawlpool").addHandler(logging.NullHandler())
