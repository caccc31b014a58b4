"""The crawl stage's work: start the frontier, the worker processes, and sum up their figures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from corpus.core.io import write_json
from corpus.core.rundir import RunDir
from corpus.crawler.config import CrawlConfig
from corpus.crawler.frontier import local_redis, stop_local_redis


class CrawlError(RuntimeError):
    pass


def write_spec(output_dir: Path, run: str, cfg: CrawlConfig) -> Path:
    """crawl/spec.json: what every worker process reads (settings, frontier URL, output folder)."""
    folder = RunDir(output_dir).crawl
    cfg.all_seeds()  # no seeds: stop now
    redis_url = local_redis(folder / "frontier") if cfg.frontier == "local" else cfg.frontier
    spec = folder / "spec.json"
    write_json(spec, {"run": run, "crawl": asdict(cfg), "redis": redis_url, "output": str(folder)})
    return spec


def crawl(output_dir: Path, run: str, cfg: CrawlConfig) -> dict:
    """Crawl with ``cfg.processes`` worker processes; returns the summary (also crawl/summary.json)."""
    import redis

    output_dir = Path(output_dir)
    spec = write_spec(output_dir, run, cfg)
    folder = spec.parent
    redis_url = json.loads(spec.read_text())["redis"]
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, "-m", "corpus.crawler.worker", str(spec), str(i)])
             for i in range(cfg.processes)]
    try:
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:  # interrupted (Ctrl-C): stop the workers too; a re-run resumes
            if p.poll() is None:
                p.terminate()
    if any(codes):
        if cfg.frontier == "local":
            stop_local_redis(redis_url)
        raise CrawlError(f"crawler process exited with {codes}; see {folder / 'logs'}")
    workers = [json.loads(p.read_text()) for p in sorted((folder / "stats").glob("worker-*.json"))]
    server = redis.Redis.from_url(redis_url)
    summary = {
        "pages": int(server.get(f"{run}:pages") or 0),
        "queue_left": server.llen(f"{run}:requests"),
        "seconds": round(time.time() - t0, 2),
        "warc_files": sorted(p.name for p in folder.glob("*.warc.gz")),
        "workers": workers,
    }
    for key in ("by_status", "off_scope", "failed", "skipped"):
        total: dict[str, int] = {}
        for w in workers:
            for k, v in w.get(key, {}).items():
                total[k] = total.get(k, 0) + v
        summary[key] = total
    for key in ("bytes", "robots_disallowed", "refused_private_address", "retries"):
        summary[key] = sum(w.get(key, 0) for w in workers)
    summary["pages_per_s"] = round(summary["pages"] / max(1e-9, summary["seconds"]), 2)
    write_json(folder / "summary.json", summary)
    if cfg.frontier == "local":
        stop_local_redis(redis_url)  # its append-only file keeps the state for a later run
    print(f"crawl: {summary['pages']} pages in {summary['seconds']} s ({summary['pages_per_s']}/s), "
          f"{summary['bytes']} bytes, status {summary['by_status']}, robots-disallowed {summary['robots_disallowed']}, "
          f"off-scope {summary['off_scope']}, failed {summary['failed']}, queue left {summary['queue_left']}", flush=True)
    return summary
