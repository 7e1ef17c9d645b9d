"""crawlpool: a polite, resumable, fast web crawler on asyncio and aiohttp."""

__version__ = "0.1.0"
