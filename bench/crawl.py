"""Crawl speed against wget, and the text of the crawled pages against their sources, in one run.

    python bench/crawl.py [--delay 0.0] [--repeats 3]

Serves ``../shared/data/sites/python-docs`` (the Python 3.11 documentation, 530 HTML pages)
on loopback, then crawls it with the same delay and scope:

- **corpus**: ``pipelines/crawl.yaml`` (``corpus run``: the crawl stage, then the curation steps);
  pages/s is the crawl stage's (``crawl/summary.json``);
- **wget**: ``wget --recursive --level=inf --warc-file ... --wait DELAY`` (robots on, same host,
  the same folders excluded).

Then the main text that the recipe kept for each page is compared with the page's
author-written source, ``_sources/<page>.rst.txt``: character 4-gram F1 (markup differs:
reStructuredText directives vs rendered text, so 1.0 is out of reach for any extractor).
Medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import require_shared  # noqa: E402
from bench.curation import f1  # noqa: E402

EXCLUDE = "/genindex,/_sources,/_static,/_downloads,/_images"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def warc_responses(paths) -> int:
    from warcio.archiveiterator import ArchiveIterator

    n = 0
    for path in paths:
        with open(path, "rb") as f:
            n += sum(1 for r in ArchiveIterator(f) if r.rec_type == "response")
    return n


def run_corpus(base: str, out: Path, delay: float) -> dict:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "corpus.cli", "run", str(ROOT / "pipelines" / "crawl.yaml"),
                    "--set", f"output_dir={out}", "--set", f'crawl.seeds=["{base}/index.html"]',
                    "--set", f"crawl.delay={delay}"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    summary = json.loads((out / "crawl" / "summary.json").read_text())
    return {"pages": summary["pages"], "crawl_seconds": summary["seconds"], "pipeline_seconds": wall,
            "pages_per_s": summary["pages"] / summary["seconds"]}


def run_wget(base: str, out: Path, delay: float) -> dict:
    out.mkdir(parents=True)
    t = time.perf_counter()
    subprocess.run(["wget", "--recursive", "--level=inf", "--no-parent", "--quiet", "--wait", str(delay),
                    "--exclude-directories", EXCLUDE, "--reject-regex", "genindex", "--no-verbose",
                    "--warc-file", str(out / "site"), "--no-warc-compression", "-P", str(out / "files"),
                    f"{base}/index.html"], cwd=out, check=False)
    seconds = time.perf_counter() - t
    pages = warc_responses(out.glob("site*.warc"))
    return {"pages": pages, "crawl_seconds": seconds, "pages_per_s": pages / seconds}


def text_f1(run: Path, base: str, site: Path) -> list[float]:
    scores = []
    for path in sorted((run / "docs").glob("*.jsonl.gz")):
        for line in gzip.open(path, "rt", encoding="utf-8"):
            doc = json.loads(line)
            url = doc.get("metadata", {}).get("url", "")
            rel = url.removeprefix(base + "/")
            source = site / "_sources" / (rel.removesuffix(".html") + ".rst.txt")
            if rel.endswith(".html") and source.exists():
                scores.append(f1(doc["text"], source.read_text(encoding="utf-8", errors="replace")))
    return scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    site = require_shared() / "sites" / "python-docs"
    if shutil.which("wget") is None:
        sys.exit("needs wget: apt-get install -y wget")
    server, base = serve(site)
    rows = {"corpus": [], "wget": []}
    work = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    try:
        for k in range(args.repeats):  # alternating, so that both see the same machine
            rows["corpus"].append(run_corpus(base, work / f"corpus-{k}", args.delay))
            rows["wget"].append(run_wget(base, work / f"wget-{k}", args.delay))
        scores = text_f1(work / "corpus-0", base, site)
    finally:
        server.shutdown()
    print(f"python-docs on loopback, delay {args.delay}s, medians of {args.repeats} runs")
    print(f"{'tool':<8}{'pages':>7}{'seconds':>9}{'pages/s':>9}")
    for tool, runs in rows.items():
        print(f"{tool:<8}{statistics.median(r['pages'] for r in runs):>7.0f}"
              f"{statistics.median(r['crawl_seconds'] for r in runs):>9.1f}"
              f"{statistics.median(r['pages_per_s'] for r in runs):>9.1f}")
    print(f"corpus pipeline (crawl + curation) {statistics.median(r['pipeline_seconds'] for r in rows['corpus']):.1f} s")
    if scores:
        print(f"text of {len(scores)} curated pages against _sources/*.rst.txt: character 4-gram F1 mean "
              f"{statistics.mean(scores):.3f}, median {statistics.median(scores):.3f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
