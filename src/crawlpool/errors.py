"""Every exception crawlpool raises, in one tree.

    CrawlpoolError                 base of everything below
    ├── UsageError                 bad input found before any request: the CLI prints it and exits 2
    │   ├── ConfigError            a bad option value, a bad or unknown key in a TOML file
    │   └── SeedError              no usable seed, an unreadable seed file, a non-http(s) seed
    ├── FrontierError              the frontier's store failed (disk full, database locked, ...)
    └── StorageError               a page body or a manifest line could not be written (disk full, ...)

FrontierError and StorageError end the crawl: the CLI prints their one line and exits 1, and what was
committed stays for `--resume`.

A failure of one URL is never an exception that reaches the caller: the fetcher turns aiohttp and OSError
exceptions into a `FetchError` code (see `fetch.py`) that ends up in the manifest record's `error` field.
"""

from __future__ import annotations


class CrawlpoolError(Exception):
    """Base class of crawlpool's own exceptions."""


class UsageError(CrawlpoolError):
    """Input that cannot be crawled as given; the message says what to change."""


class ConfigError(UsageError):
    """A configuration value or file is invalid."""


class SeedError(UsageError):
    """The seeds cannot be used."""


class FrontierError(CrawlpoolError):
    """The frontier's storage failed."""


class StorageError(CrawlpoolError):
    """Writing to the output directory failed; the message names the path and the cause."""
