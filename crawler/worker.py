"""One crawler process: ``python -m corpus.crawler.worker SPEC.json WORKER``.

The crawl stage writes SPEC.json (the crawl settings, the frontier URL, the output folder) and
starts one process per worker; on other machines, start more with the same SPEC and another
WORKER name (``corpus crawl PIPELINE.yaml --worker NAME``), sharing a ``redis://`` frontier.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

from corpus.crawler.config import CrawlConfig


def settings(cfg: CrawlConfig, run: str, redis_url: str, log_file: Path) -> dict:
    return {
        "ROBOTSTXT_OBEY": cfg.obey_robots,
        "USER_AGENT": cfg.user_agent,
        "DOWNLOAD_DELAY": cfg.delay,
        "DOWNLOAD_DELAY_JITTER": 0,  # hold the delay exactly
        "CONCURRENT_REQUESTS_PER_DOMAIN": cfg.concurrency_per_host,
        "CONCURRENT_REQUESTS": max(cfg.concurrency, cfg.concurrency_per_host),
        "AUTOTHROTTLE_ENABLED": cfg.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(cfg.delay, 0.01),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(cfg.concurrency_per_host),
        "RETRY_TIMES": cfg.retries,
        "REDIRECT_MAX_TIMES": cfg.max_redirects,
        "DOWNLOAD_TIMEOUT": cfg.timeout,
        "DOWNLOAD_MAXSIZE": cfg.max_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "DEPTH_LIMIT": 0,  # depth is checked when links are queued (spider.follow)
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "INFO",
        "LOG_FILE": str(log_file),
        "LOG_FILE_APPEND": True,
        "SCHEDULER": "corpus.crawler.spider.LedgerScheduler",
        "SCHEDULER_QUEUE_CLASS": "corpus.crawler.spider.LedgerQueue",
        "SCHEDULER_QUEUE_KEY": f"{run}:requests",
        "SCHEDULER_DUPEFILTER_KEY": f"{run}:dupefilter",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_PERSIST": True,
        "REDIS_URL": redis_url,
        "DOWNLOADER_MIDDLEWARES": {"corpus.crawler.spider.PrivateAddressGuard": 60},
        "EXTENSIONS": {"corpus.crawler.spider.Progress": 500},
    }


def run_worker(spec_path: str, worker: str) -> int:
    from scrapy.crawler import CrawlerProcess

    from corpus.crawler.spider import CorpusSpider
    from corpus.crawler.warc import RotatingWarcWriter, repair

    spec = json.loads(Path(spec_path).read_text())
    cfg = CrawlConfig(**spec["crawl"])
    out = Path(spec["output"])
    prefix = f"{spec['run']}-{socket.gethostname()}-{worker}"
    already = repair(out, prefix)  # a killed run's last file: its complete records are kept
    writer = RotatingWarcWriter(out, prefix, cfg.warc_max_bytes)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    process = CrawlerProcess(settings(cfg, spec["run"], spec["redis"], out / "logs" / f"worker-{worker}.log"))
    process.crawl(CorpusSpider, cfg=cfg, worker=worker, run=spec["run"], writer=writer, already_written=already)
    process.start()
    return 0


if __name__ == "__main__":
    sys.exit(run_worker(sys.argv[1], sys.argv[2]))
