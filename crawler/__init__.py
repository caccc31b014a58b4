"""corpus.crawler: a polite, resumable web crawler that writes WARC files (Scrapy + warcio).

Scrapy does the crawling (robots.txt, per-host delay and concurrency, AutoThrottle, retries,
redirects, size limits); scrapy-redis keeps the frontier in Redis, so that a crawl survives
``kill -9`` and several processes (on one machine or many) share one frontier; warcio writes
the records. Our code is the glue: scope rules, the WARC writer, the private-address guard,
the in-flight ledger that makes resume exact, progress and the summary.
"""
