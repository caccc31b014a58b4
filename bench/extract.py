"""Main-text extraction: F1 and pages per second per core, in one run, for datatrove's
``Trafilatura`` step, our ``trafilatura`` step, resiliparse alone and our ``html_extract``.

    python bench/extract.py [--passes 3] [--min-pages 500] [--no-docs]      # needs ../shared/data

Data (``../shared/data``):

- ``extraction-dev/readability-pages``: 130 real pages (Mozilla Readability's test pages) with
  Readability's own main text (``expected.html``); bag-of-words F1 (``\\w+``, lower case), as
  ``tests/test_extract.py`` computes it.
- ``zh-extraction/pages``: 38 Chinese pages (mostly GBK, decoded like a browser by
  ``files_reader``) with hand-extracted main text; character 4-gram F1 (whitespace removed), as
  ``bench/curation.py`` computes it.
- untouched by any tuning: ``zh-extraction/test-pages/trafilatura`` (7 zh, ja, ru, en pages of
  trafilatura's evaluation: strings that must be in the main text and boilerplate that must not
  be), and ``sites/python-docs`` (530 pages of the Python 3.11 documentation, Debian's
  python3.11-doc: word F1 against each page's reST source, markup included, so every tool's
  figure is low in the same way; mostly a speed set), and the 92 HTML pages of the WARCs that
  ``pipelines/web.yaml`` reads (speed and how many pages go to trafilatura; no reference text).

The pages of the first two sets are split in two halves by a hash of their name (``bench.curation.half``):
``html_extract``'s rules (``corpus.extract.main_text``) were chosen on the ``dev`` half; the
``test`` half is the held-out figure. Speed: one process, pages in memory, each tool's step run
from its start (its sandbox process included) over the whole set, repeated to at least
``--min-pages`` pages (a step's start-up, some tens of milliseconds, is then a small part of a
run, as in a real task of thousands of pages), the median of ``--passes``
passes (each pass runs every tool, so that a change in the machine's load hits all alike); the
sandboxed tools keep one core busy at a time (the parent waits on the child). Pages per second are
given by the wall clock and by CPU time (this process and its sandbox processes, which the
steps end and reap): on a machine that other work keeps busy, the CPU figure is the steadier.
``resiliparse`` is ``extract_plain_text(HTMLTree.parse(html), main_content=True)`` with the
library's defaults, in process; ``html_extract -fallback`` is our step with ``fallback: false``.
Datatrove's step is ``Trafilatura()`` with its defaults (favour_precision, deduplicate) except the
timeout (10 s, as web.yaml gives ours; its default 1 s would skip slow pages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import SHARED, require_shared  # noqa: E402
from bench.curation import f1 as shingle_f1, half  # noqa: E402

TIMEOUT = 10.0


def words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", (text or "").lower()))


def word_f1(out: str, expected: str) -> float:
    e, o = words(expected), words(out)
    inter = sum((e & o).values())
    p, r = inter / max(1, sum(o.values())), inter / max(1, sum(e.values()))
    return 2 * p * r / max(1e-9, p + r)


def readability_pages() -> list[dict]:
    import lxml.html

    root = SHARED / "extraction-dev" / "readability-pages"
    out = []
    for name in sorted(os.listdir(root)):
        src, exp = root / name / "source.html", root / name / "expected.html"
        if src.exists() and exp.exists():
            out.append({"id": name, "html": src.read_text(encoding="utf-8", errors="replace"),
                        "gold": lxml.html.fromstring(exp.read_text(encoding="utf-8", errors="replace") or "<p/>").text_content()})
    return out


def chinese_pages() -> list[dict]:
    from corpus.readers import FilesReader

    pages = SHARED / "zh-extraction" / "pages"
    html = {d.id[:-5]: d.text for d in FilesReader([str(pages / "original" / "*.html")]).run()}
    return [{"id": p.stem, "html": html[p.stem], "gold": p.read_text(encoding="utf-8")}
            for p in sorted((pages / "cleaned").glob("*.txt")) if p.stem in html]


def trafilatura_eval_pages() -> list[dict]:
    from corpus.decode import decode

    folder = SHARED / "zh-extraction" / "test-pages" / "trafilatura"
    out = []
    for line in (folder / "evaldata_cjk_ru.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        path = next(folder.rglob(row["file"]), None)
        if path is not None:
            out.append({"id": row["file"], "html": decode(path.read_bytes(), None, row["url"])[0] or "",
                        "with": row["with"], "without": row["without"]})
    return out


def python_docs_pages() -> list[dict]:
    root = SHARED / "sites" / "python-docs"
    out = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0].startswith("_"):
            continue
        source = root / "_sources" / rel.with_suffix(".rst.txt")
        out.append({"id": str(rel), "html": path.read_text(encoding="utf-8", errors="replace"),
                    "gold": source.read_text(encoding="utf-8", errors="replace") if source.exists() else None})
    return out


def warc_pages() -> list[dict]:
    """The HTML records of web.yaml's WARCs, decoded by our warc_reader."""
    import yaml

    from corpus.readers import WarcReader

    steps = yaml.safe_load((ROOT / "pipelines" / "web.yaml").read_text())["steps"]
    paths = [str((ROOT / p).resolve()) for p in next(s["warc_reader"]["paths"] for s in steps if "warc_reader" in s)]
    return [{"id": d.id, "html": d.text} for d in WarcReader(paths).run() if d.metadata.get("content_type") != "text/plain"]


# ---------------------------------------------------------------- the tools


def datatrove_trafilatura():
    from datatrove.pipeline.extractors import Trafilatura

    return Trafilatura(timeout=TIMEOUT)


def our_trafilatura():
    from corpus.extract import TrafilaturaExtractor

    return TrafilaturaExtractor(timeout=TIMEOUT)


def html_extract(fallback: bool = True):
    from corpus.extract import HtmlExtractor

    return lambda: HtmlExtractor(timeout=TIMEOUT, fallback=fallback)


class Resiliparse:
    """resiliparse's main-content text with the library's defaults, in process (no sandbox)."""

    def __init__(self):
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        self.extract = lambda html: extract_plain_text(HTMLTree.parse(html), main_content=True)
        self.stats = None

    def run(self, data):
        for doc in data:
            doc.text = self.extract(doc.text)
            if doc.text.strip():
                yield doc


TOOLS = {
    "datatrove Trafilatura": datatrove_trafilatura,
    "corpus trafilatura": our_trafilatura,
    "resiliparse": Resiliparse,
    "html_extract -fallback": html_extract(fallback=False),
    "html_extract": html_extract(),
}


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the sandboxes, once they exit)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_tool(make, pages: list[dict]) -> tuple[dict[str, str], float, float, dict]:
    """Texts by page id, wall seconds and CPU seconds for the whole set, and the step's counters."""
    from datatrove.data import Document
    from loguru import logger

    docs = [Document(text=p["html"], id=p["id"], metadata={"content_type": "text/html"}) for p in pages]
    step = make()
    logger.remove()  # the sandbox's INFO lines and per-page warnings: not part of the timing
    t, cpu = time.perf_counter(), cpu_seconds()
    out = {d.id: d.text for d in step.run(iter(docs))}
    seconds, cpu = time.perf_counter() - t, cpu_seconds() - cpu
    logger.add(sys.stderr, level="WARNING")
    counters = {k: int(v.total) for k, v in step.stats.stats.items()} if getattr(step, "stats", None) else {}
    return out, seconds, cpu, counters


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=3, help="timed passes per tool and set (median)")
    parser.add_argument("--min-pages", type=int, default=500, help="each set repeated to at least this many pages for the timed passes")
    parser.add_argument("--no-docs", action="store_true", help="leave out the 530 python-docs pages")
    args = parser.parse_args()
    require_shared()
    print(f"load before: {load()}  ({os.cpu_count()} cores)")
    sets = {"readability (en+)": (readability_pages(), word_f1), "zh-extraction": (chinese_pages(), shingle_f1)}
    checks = trafilatura_eval_pages()
    docs = [] if args.no_docs else python_docs_pages()
    warcs = warc_pages()
    results, times, cpus = {}, {}, {}
    named = list(sets.items()) + [("trafilatura-eval", (checks, None)), ("python-docs", (docs, None)), ("web.yaml WARCs", (warcs, None))]
    named = [(name, pages) for name, (pages, _) in named if pages]
    for tool, make in TOOLS.items():  # texts and counters: each page once
        for name, pages in named:
            out, _, _, counters = run_tool(make, pages)
            results[tool, name] = {"out": out, "counters": counters}
    timed = {name: pages * -(-args.min_pages // len(pages)) for name, pages in named if name != "trafilatura-eval"}
    print(f"timed sets: {', '.join(f'{name} {len(pages)} pages' for name, pages in timed.items())}")
    for i in range(args.passes):  # passes outside, tools inside: a change of load hits every tool alike
        for tool, make in TOOLS.items():
            for name, pages in timed.items():
                _, seconds, cpu, _ = run_tool(make, pages)
                times.setdefault((tool, name), []).append(seconds)
                cpus.setdefault((tool, name), []).append(cpu)
        print(f"pass {i + 1} done: {load()}", flush=True)
    for (tool, name), secs in times.items():
        pages = timed[name]
        results[tool, name]["pages_s"] = len(pages) / statistics.median(secs)
        results[tool, name]["pages_cpu_s"] = len(pages) / statistics.median(cpus[tool, name])
        print(f"  {tool:<24}{name:<20}{len(pages) / statistics.median(secs):>8.1f} pages/s "
              f"(passes: {', '.join(f'{s:.2f}' for s in secs)} s; CPU {', '.join(f'{s:.2f}' for s in cpus[tool, name])} s)")

    print(f"\nload after: {load()}")
    print("\nMain-text F1 (mean / median) per half; `test` is held out (html_extract's rules were chosen on `dev`)")
    head = f"{'tool':<24}" + "".join(f"{n + ' ' + part:>27}" for n in sets for part in ("test", "dev", "all"))
    print(head)
    for tool in TOOLS:
        row = f"{tool:<24}"
        for name, (pages, score) in sets.items():
            out = results[tool, name]["out"]
            f1s = {p["id"]: score(out.get(p["id"], ""), p["gold"]) for p in pages}
            for part in ("test", "dev", "all"):
                vals = [v for k, v in f1s.items() if part in ("all", half(k))]
                row += f"{f'{statistics.mean(vals):.3f} / {statistics.median(vals):.3f} (n={len(vals)})':>27}"
        print(row)

    names = list(sets) + (["python-docs"] if docs else []) + (["web.yaml WARCs"] if warcs else [])
    for key, what in (("pages_s", "pages per second (wall clock)"),
                      ("pages_cpu_s", "pages per CPU second (this process and its sandbox process)")):
        print(f"\nSpeed, one process: {what}, median of passes; ratio to datatrove's Trafilatura")
        print(f"{'tool':<24}" + "".join(f"{n:>26}" for n in names))
        for tool in TOOLS:
            row = f"{tool:<24}"
            for name in names:
                speed, base = results[tool, name][key], results["datatrove Trafilatura", name][key]
                row += f"{f'{speed:.1f} ({speed / base:.1f}x)':>26}"
            print(row)

    print("\nhtml_extract: pages the fast pass was unsure of, and what trafilatura gave")
    for name in names:
        c = results["html_extract", name]["counters"]
        unsure = {k: v for k, v in c.items() if k.startswith(("unsure_", "fallback_", "fast_failed_"))}
        total = sum(v for k, v in c.items() if k.startswith("unsure_"))
        print(f"  {name:<20} {total} of {c.get('funnel.in', 0)} pages to trafilatura: {unsure}")

    if checks:
        print(f"\ntrafilatura's evaluation pages (untouched: {len(checks)} pages, zh ja ru en): "
              "share of must-have strings present / of boilerplate strings absent")
        for tool in TOOLS:
            out = results[tool, "trafilatura-eval"]["out"]
            have = [s in out.get(p["id"], "") for p in checks for s in p["with"]]
            absent = [s not in out.get(p["id"], "") for p in checks for s in p["without"]]
            print(f"  {tool:<24}{sum(have)}/{len(have)} present, {sum(absent)}/{len(absent)} absent")
    if docs:
        scored = [p for p in docs if p["gold"]]
        print(f"\npython-docs (untouched): word F1 against the reST source of {len(scored)} pages (markup counts against every tool)")
        for tool in TOOLS:
            out = results[tool, "python-docs"]["out"]
            vals = [word_f1(out.get(p["id"], ""), p["gold"]) for p in scored]
            print(f"  {tool:<24}mean {statistics.mean(vals):.3f}  median {statistics.median(vals):.3f}  "
                  f"pages with text {len(out)}/{len(docs)}")


if __name__ == "__main__":
    main()
