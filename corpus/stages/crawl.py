"""The ``crawl:`` stage: before the steps, a polite, resumable crawl of the seeds into WARC files
in ``crawl/`` (``corpus.crawler``: Scrapy, warcio, a Redis frontier)."""

from __future__ import annotations

from corpus.core.io import staged
from corpus.core.registry import RunContext, register_stage
from corpus.crawler.config import CrawlConfig


@register_stage("crawl", CrawlConfig, order=-10)
def run(ctx: RunContext, cfg: CrawlConfig) -> dict:
    """Crawl the seeds (robots.txt, per-host delay, scope, no private addresses) into crawl/*.warc.gz."""
    from corpus.crawler.frontier import FrontierError
    from corpus.crawler.run import CrawlError, crawl

    try:
        # a run folder on object storage: the crawl works in a local mirror of crawl/ (the
        # frontier's server needs a local socket and file), whose WARC files, frontier state and
        # figures are uploaded when it ends; the steps then read the WARC files from the store
        with staged(ctx.run.crawl) as local:
            result = crawl(local.parent if ctx.run.remote else ctx.output_dir,
                           ctx.pipeline.get("name") or ctx.output_dir.name, cfg)
        return result
    except (CrawlError, FrontierError) as e:
        raise ValueError(str(e)) from e
