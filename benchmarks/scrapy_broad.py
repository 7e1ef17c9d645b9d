"""Child process, run with a Python that has Scrapy: a CrawlSpider over the broad benchmark's hosts.

    /tmp/scrapy-venv/bin/python -m benchmarks.scrapy_broad --seeds FILE --out DIR --result FILE \
        --concurrency 64 --per-host 2

Scrapy as its broad-crawl page says to set it up (docs.scrapy.org/en/latest/topics/broad-crawls.html):
global concurrency raised, the downloader-aware priority queue, a bigger reactor thread pool, INFO logging,
no cookies, no retries, a short download timeout, no redirects, breadth-first order, and the AJAX-crawlable
middleware on where this Scrapy still has it. Beside those, as crawlpool runs: robots.txt ignored, no
delay or AutoThrottle, CONCURRENT_REQUESTS_PER_DOMAIN = --per-host (every host is its own address),
links followed only to the seeds' hosts, every 200 body written to a file, and the seeds put through the
duplicate filter like any other URL (by default Scrapy exempts start requests, and fetches a root again
when a page links back to it).

Writes a JSON object: `stored` (the URL of every body written, once per write), `wall_s` (the crawl,
without interpreter start-up and imports), `requests`, `errors`. Needs only Scrapy and the standard library.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

from scrapy.crawler import CrawlerProcess
from scrapy.http import Request, Response
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class BroadSpider(CrawlSpider):
    name = "broad"
    rules = (Rule(LinkExtractor(), callback="parse_item", follow=True),)

    def __init__(self, seeds: list[str], out: Path, **kwargs: Any) -> None:
        self.start_urls = seeds
        self.allowed_domains = sorted({urlsplit(url).hostname or "" for url in seeds})
        self.out = out
        self.stored: list[str] = []
        super().__init__(**kwargs)

    async def start(self) -> AsyncIterator[Request]:
        # Scrapy's default start requests skip the duplicate filter, so a link back to a root would fetch
        # it again; a broad crawl's seeds are URLs like any other.
        for url in self.start_urls:
            yield Request(url, dont_filter=False)

    def parse_start_url(self, response: Response) -> Iterator[dict[str, str]]:
        return self.parse_item(response)

    def parse_item(self, response: Response) -> Iterator[dict[str, str]]:
        if response.status == 200:
            self.stored.append(urldefrag(response.url).url)
            (self.out / f"{len(self.stored)}.html").write_bytes(response.body)
        return iter(())


def settings(concurrency: int, per_host: int) -> dict[str, Any]:
    broad = {
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_host,
        "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
        "REACTOR_THREADPOOL_MAXSIZE": 20,
        "LOG_LEVEL": "INFO",
        "COOKIES_ENABLED": False,
        "RETRY_ENABLED": False,
        "DOWNLOAD_TIMEOUT": 15,
        "REDIRECT_ENABLED": False,
        "DEPTH_PRIORITY": 1,
        "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
    }
    if importlib.util.find_spec("scrapy.downloadermiddlewares.ajaxcrawl") is not None:
        broad["AJAXCRAWL_ENABLED"] = True  # removed from Scrapy 2.13 on
    return {
        **broad,
        "ROBOTSTXT_OBEY": False,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "HTTPPROXY_ENABLED": False,  # loopback only
        "TELNETCONSOLE_ENABLED": False,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=Path, required=True, help="one start URL per line")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-host", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = args.seeds.read_text().split()
    process = CrawlerProcess(settings(args.concurrency, args.per_host))
    crawler = process.create_crawler(BroadSpider)
    process.crawl(crawler, seeds=seeds, out=args.out)
    started = time.perf_counter()
    process.start()
    wall_s = time.perf_counter() - started
    spider: BroadSpider = crawler.spider
    stats = crawler.stats.get_stats()
    errors = int(stats.get("downloader/exception_count", 0)) + sum(
        int(v)
        for k, v in stats.items()
        if k.startswith("downloader/response_status_count/") and k[-4:] != "/200"
    )
    result = {
        "stored": spider.stored,
        "wall_s": wall_s,
        "requests": int(stats.get("downloader/request_count", 0)),
        "errors": errors,
    }
    args.result.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
