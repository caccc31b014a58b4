"""The Scrapy side: the spider, the private-address guard, the frontier queue with its in-flight
ledger, and the progress/idle extension.

Order of work for a page, so that a ``kill -9`` anywhere loses nothing and repeats nothing:
the queue pop and the in-flight entry are one Redis script; the page's links are put in the
frontier before its record is written; the in-flight entry goes once the record is written.
A restarted worker puts its in-flight requests back in the queue, except those whose record
its last WARC file already holds (``warc.repair``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import socket
import time
from http import HTTPStatus
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider, IgnoreRequest
from scrapy.http import TextResponse
from scrapy.linkextractors import LinkExtractor
from scrapy_redis.queue import FifoQueue
from scrapy_redis.scheduler import Scheduler

from corpus.crawler.config import CrawlConfig

HTTP_STATUSES = {s.value for s in HTTPStatus}
POP = """
local v = redis.call('RPOP', KEYS[1])
if v then redis.call('HSET', KEYS[2], redis.sha1hex(v), v) end
return v
"""


def host_in(host: str, domains: list[str]) -> bool:
    host = (host or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


class LedgerQueue(FifoQueue):
    """scrapy-redis's FIFO queue whose pop also records the request in the worker's in-flight
    hash, in one Redis script (nothing can be lost between the two)."""

    def pop(self, timeout=0):
        data = self.server.eval(POP, 2, self.key, self.spider.inflight_key)
        if not data:
            return None
        request = self._decode_request(data)
        old = request.meta.get("inflight")
        if old:  # a retry or a redirect of a request taken earlier: the new entry covers it
            self.server.hdel(self.spider.inflight_key, old)
        request.meta["inflight"] = hashlib.sha1(data).hexdigest()
        return request


class LedgerScheduler(Scheduler):
    """scrapy-redis's scheduler that puts a killed worker's in-flight requests back, stops at
    ``max_pages`` and lets the spider enqueue synchronously (``spider.frontier``)."""

    def open(self, spider):
        super().open(spider)
        spider.frontier = self
        server, key = self.server, spider.inflight_key
        back = 0
        for field, data in server.hgetall(key).items():
            request = self.queue._decode_request(data)
            pipe = server.pipeline()
            if request.url not in spider.already_written:
                pipe.rpush(self.queue.key, data)  # to the front of the FIFO
                back += 1
            pipe.hdel(key, field)
            pipe.execute()
        if back:
            spider.logger.info(f"crawl: {back} requests in flight when the last run stopped are queued again")

    def full(self) -> bool:
        return int(self.server.get(self.spider.pages_key) or 0) >= self.spider.cfg.max_pages

    def next_request(self):
        return None if self.full() else super().next_request()

    def has_pending_requests(self):
        return not self.full() and super().has_pending_requests()

    def put_back(self, request) -> None:
        """A request taken but not to be written now (max_pages reached): back in the queue."""
        request.meta.pop("inflight", None)
        self.queue.push(request.replace(dont_filter=True))


class PrivateAddressGuard:
    """Refuses requests to loopback, private, link-local and other non-public addresses (the
    resolved IP, for every request, redirects included), unless ``allow_private``."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.cache: dict[str, bool] = {}

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def _private(self, host: str) -> bool:
        if host not in self.cache:
            try:
                addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
            except OSError:
                addresses = set()
            self.cache[host] = any(not ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses)
        return self.cache[host]

    def process_request(self, request, spider=None):
        spider = spider or self.crawler.spider
        if spider.cfg.allow_private:
            return None
        if self._private(urlsplit(request.url).hostname or ""):
            self.crawler.stats.inc_value("corpus/refused_private_address")
            raise IgnoreRequest(f"refused: {request.url} resolves to a private address (allow_private: false)")
        return None

    def process_response(self, request, response, spider=None):
        spider = spider or self.crawler.spider
        ip = getattr(response, "ip_address", None)
        if not spider.cfg.allow_private and ip is not None and not ip.is_global:
            self.crawler.stats.inc_value("corpus/refused_private_address")
            raise IgnoreRequest(f"refused: {request.url} was served from a private address {ip}")
        return response


class CorpusSpider(scrapy.Spider):
    name = "corpus"

    def __init__(self, cfg: CrawlConfig, worker: str, run: str, writer, already_written: set[str], **kwargs):
        super().__init__(**kwargs)
        self.cfg, self.worker, self.run, self.writer = cfg, worker, run, writer
        self.allowed_domains = cfg.domains()
        self.inflight_key = f"{run}:inflight:{worker}"
        self.pages_key = f"{run}:pages"
        self.already_written = already_written
        self.links = LinkExtractor(deny_extensions=[])
        self.allow = [re.compile(p) for p in cfg.allow]
        self.deny = [re.compile(p) for p in cfg.deny]
        self.types = tuple(t.lower() for t in cfg.content_types)

    async def start(self):
        for url in self.cfg.all_seeds():
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, meta={"depth": 0})
        for url in self.cfg.sitemaps:
            yield scrapy.Request(url, callback=self.parse_sitemap, errback=self.failed, meta={"depth": 0})

    # -- scope
    def in_scope(self, url: str) -> str | None:
        """None when a link may be followed, else why not."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return "other_scheme"
        if not host_in(parts.hostname or "", self.allowed_domains):
            return "off_domain"
        if self.allow and not any(p.search(url) for p in self.allow):
            return "not_allowed"
        if any(p.search(url) for p in self.deny):
            return "denied"
        return None

    def follow(self, response, urls, depth: int | None = None, callback=None) -> None:
        """Put the in-scope links of a page in the frontier, now (before its record is written):
        one Redis round trip for the seen-set and one for the queue, whatever the number of links."""
        depth = response.meta.get("depth", 0) + 1 if depth is None else depth
        stats = self.crawler.stats
        requests = []
        for url in dict.fromkeys(urls):
            why = self.in_scope(url)
            if why:
                stats.inc_value(f"corpus/off_scope/{why}")
            elif depth > self.cfg.max_depth:
                stats.inc_value("corpus/off_scope/too_deep")
            else:
                requests.append(scrapy.Request(url, callback=callback or self.parse, errback=self.failed,
                                               meta={"depth": depth}))
        if not requests:
            return
        frontier = self.frontier
        seen = frontier.server.pipeline(transaction=False)
        for request in requests:
            seen.sadd(frontier.df.key, frontier.df.request_fingerprint(request))
        new = [r for r, added in zip(requests, seen.execute()) if added]
        if new:
            frontier.server.lpush(frontier.queue.key, *[frontier.queue._encode_request(r) for r in new])

    # -- responses
    def parse(self, response):
        ctype = response.headers.get(b"Content-Type", b"").decode("latin-1").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(self.types):
            self.crawler.stats.inc_value("corpus/skipped/content_type")
            self.done(response.request)
            return
        if isinstance(response, TextResponse) and ctype != "text/plain":
            self.follow(response, [link.url for link in self.links.extract_links(response)])
        self.record(response)
        return
        yield  # a generator, as Scrapy expects of a callback

    def parse_sitemap(self, response):
        from scrapy.utils.sitemap import Sitemap

        try:
            sitemap = Sitemap(response.body)
            urls = [entry["loc"] for entry in sitemap if "loc" in entry]
        except Exception:  # noqa: BLE001  (a broken sitemap is counted, not fatal)
            self.crawler.stats.inc_value("corpus/skipped/bad_sitemap")
            sitemap, urls = None, []
        index = sitemap is not None and sitemap.type == "sitemapindex"
        # the pages a sitemap lists are seeds (depth 0); a sitemap index lists more sitemaps
        self.follow(response, urls, depth=0, callback=self.parse_sitemap if index else None)
        self.done(response.request)
        return
        yield

    def failed(self, failure):
        request = failure.request
        response = getattr(failure.value, "response", None)
        stats = self.crawler.stats
        if response is not None:  # an HTTP error status after retries: recorded, as it was served
            stats.inc_value(f"corpus/status/{response.status}")
            self.record(response)
            return
        reason = type(failure.value).__name__
        message = str(failure.value)
        if "robots.txt" in message or "Forbidden by robots" in message:
            reason = "robots_disallowed"
        elif "private address" in message:
            reason = "private_address"
        elif "Cancelled" in reason or "maxsize" in message.lower() or "max size" in message.lower():
            reason = "too_large"
        elif "Timeout" in reason or "timed out" in message.lower():
            reason = "timeout"
        elif reason in ("DownloadFailedError", "ResponseFailed", "ConnectionLost", "ConnectionRefusedError",
                        "ConnectError", "DNSLookupError", "ResponseNeverReceived"):
            reason = "connection_failed"
        elif reason == "IgnoreRequest" and "redirect" in message.lower():
            reason = "too_many_redirects"
        stats.inc_value(f"corpus/failed/{reason}")
        self.done(request)

    def record(self, response) -> None:
        request = response.request
        if self.frontier.server.incr(self.pages_key) > self.cfg.max_pages:
            # requests fetched ahead of the limit: not written, back in the queue for a later run
            self.frontier.server.decr(self.pages_key)
            self.frontier.put_back(request)
            self.done(request)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, vs in response.headers.items() for v in vs]
        req_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, vs in request.headers.items() for v in vs]
        parts = urlsplit(request.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        req_headers = [("Host", parts.netloc)] + req_headers
        ip = getattr(response, "ip_address", None)
        reason = HTTPStatus(response.status).phrase if response.status in HTTP_STATUSES else ""
        n = self.writer.write(response.url, response.status, reason, headers, response.body,
                              f"{request.method} {path} HTTP/1.1", req_headers, str(ip) if ip else None)
        stats = self.crawler.stats
        stats.inc_value("corpus/pages")
        stats.inc_value("corpus/bytes", n)
        if response.status < 400:
            stats.inc_value(f"corpus/status/{response.status}")
        self.done(request)

    def done(self, request) -> None:
        key = request.meta.get("inflight")
        if key:
            self.frontier.server.hdel(self.inflight_key, key)


class Progress:
    """Logs progress every few seconds; keeps the spider open while other workers may still add
    links; closes the WARC file and writes this worker's figures at the end."""

    def __init__(self, crawler, every: float = 5.0):
        self.crawler, self.every = crawler, every
        self.t0 = self.last = time.time()
        crawler.signals.connect(self.idle, signal=signals.spider_idle)
        crawler.signals.connect(self.tick, signal=signals.response_received)
        crawler.signals.connect(self.closed, signal=signals.spider_closed)
        crawler.signals.connect(self.dropped, signal=signals.request_dropped)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def figures(self, spider) -> dict:
        stats = self.crawler.stats.get_stats()
        server = spider.frontier.server
        pages = stats.get("corpus/pages", 0)
        seconds = max(1e-9, time.time() - self.t0)
        return {
            "worker": spider.worker, "pages": pages, "pages_per_s": round(pages / seconds, 2),
            "bytes": stats.get("corpus/bytes", 0), "queue": server.llen(spider.frontier.queue.key),
            "by_status": {k.rsplit("/", 1)[1]: v for k, v in stats.items() if k.startswith("corpus/status/")},
            "robots_disallowed": stats.get("robotstxt/forbidden", 0),
            "off_scope": {k.rsplit("/", 1)[1]: v for k, v in stats.items() if k.startswith("corpus/off_scope/")},
            "failed": {k.rsplit("/", 1)[1]: v for k, v in stats.items() if k.startswith("corpus/failed/")},
            "skipped": {k.rsplit("/", 1)[1]: v for k, v in stats.items() if k.startswith("corpus/skipped/")},
            "refused_private_address": stats.get("corpus/refused_private_address", 0),
            "retries": stats.get("retry/count", 0), "seconds": round(seconds, 2),
        }

    def tick(self, response, request, spider):
        if time.time() - self.last >= self.every:
            self.last = time.time()
            f = self.figures(spider)
            print(f"crawl[{f['worker']}]: {f['pages']} pages, {f['pages_per_s']}/s, queue {f['queue']}, "
                  f"status {f['by_status']}, {f['bytes']} bytes, robots-disallowed {f['robots_disallowed']}, "
                  f"off-scope {sum(f['off_scope'].values())}", flush=True)

    def dropped(self, request, spider):
        """A redirect to a page already seen (or a loop): the scheduler drops it; it is done."""
        self.crawler.stats.inc_value("corpus/skipped/redirect_to_seen")
        spider.done(request)

    def idle(self, spider):
        server = spider.frontier.server
        if int(server.get(spider.pages_key) or 0) >= spider.cfg.max_pages:
            return  # done: close
        if server.llen(spider.frontier.queue.key):
            raise DontCloseSpider
        for key in server.scan_iter(f"{spider.run}:inflight:*"):
            if server.hlen(key):
                raise DontCloseSpider  # another worker is still fetching: it may find more links

    def closed(self, spider, reason):
        spider.writer.close()
        f = self.figures(spider)
        f["reason"] = reason
        out = spider.writer.folder / "stats" / f"worker-{spider.worker}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(f, indent=1))
