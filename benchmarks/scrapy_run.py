"""Child process, run with a Python that has Scrapy: a minimal CrawlSpider over the served site.

    /tmp/scrapy-venv/bin/python -m benchmarks.scrapy_run --base http://127.0.0.1:PORT --pages N \
        --out DIR --result FILE --concurrency 32

Same concurrency as the other variants (overall and per domain), robots.txt ignored, no delay, no
AutoThrottle, no retries, every page's body written to a file. Needs only Scrapy and the standard library
(not crawlpool), so it runs from its own virtualenv.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapy.crawler import CrawlerProcess
from scrapy.http import Response
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule

from benchmarks.childresult import ChildResult, child_parser


class SiteSpider(CrawlSpider):
    name = "site"
    rules = (Rule(LinkExtractor(), callback="parse_item", follow=True),)

    def __init__(self, base: str, out: Path, **kwargs: Any) -> None:
        self.start_urls = [base + "/"]
        self.allowed_domains = [urlsplit(base).hostname or "127.0.0.1"]
        self.out = out
        self.stored: set[str] = set()
        self.count = 0
        super().__init__(**kwargs)

    def parse_start_url(self, response: Response) -> Iterator[dict[str, str]]:
        return self.parse_item(response)

    def parse_item(self, response: Response) -> Iterator[dict[str, str]]:
        if response.status == 200:
            self.count += 1
            (self.out / f"{self.count}.html").write_bytes(response.body)
            self.stored.add(response.url)
        return iter(())


def settings(concurrency: int) -> dict[str, Any]:
    return {
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "RETRY_ENABLED": False,
        "HTTPPROXY_ENABLED": False,  # loopback only
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
    }


def main() -> None:
    parser = child_parser(__doc__)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    process = CrawlerProcess(settings(args.concurrency))
    crawler = process.create_crawler(SiteSpider)
    process.crawl(crawler, base=args.base, out=args.out)
    started = time.perf_counter()
    process.start()
    wall_s = time.perf_counter() - started
    spider: SiteSpider = crawler.spider
    stats = crawler.stats.get_stats()
    requests = int(stats.get("downloader/request_count", 0))
    errors = int(stats.get("downloader/exception_count", 0)) + sum(
        int(v)
        for k, v in stats.items()
        if k.startswith("downloader/response_status_count/") and k[-4:] != "/200"
    )
    ChildResult.check(
        spider.stored, args.base, args.pages, errors=errors, wall_s=wall_s, requests=requests
    ).write(args.result)


if __name__ == "__main__":
    main()
