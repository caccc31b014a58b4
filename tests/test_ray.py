"""The same pipeline on datatrove's local executor and on its Ray executor, with a real local Ray
cluster, keeps the same documents and writes the same shards (encoded as executor tasks)."""

import gzip
import json

import pytest

from corpus.config import config_from_dict
from corpus.pipeline import Runner

ray = pytest.importorskip("ray")


def kept_ids(out):
    return sorted(json.loads(line)["id"] for f in (out / "docs").glob("*.jsonl.gz") for line in gzip.open(f, "rt"))


def test_local_and_ray_keep_the_same_documents(tmp_path, shared):
    warcs = shared("warc")
    inputs = tmp_path / "in"
    inputs.mkdir()
    # real pages, plus copies of some of them with other navigation: work for dedup
    from corpus.readers import WarcReader

    docs = list(WarcReader([str(warcs / "resiliparse" / "warcfile.warc.gz"), str(warcs / "dolma" / "*.warc.gz")]).run())
    for i, d in enumerate(docs):
        (inputs / f"{i:03d}.html").write_text(d.text)
        if i % 4 == 0:
            (inputs / f"{i:03d}-copy.html").write_text(d.text.replace("<body", "<body><nav>Home | News | Contact</nav>", 1))
    results = {}
    for kind in ("local", "ray"):
        out = tmp_path / kind
        cfg = config_from_dict({
            "output_dir": str(out),
            "executor": {"type": kind, "tasks": 3, "workers": 2} | ({"mem_per_cpu_gb": 0.5} if kind == "ray" else {}),
            "steps": [{"files_reader": {"paths": [str(inputs / "*.html")]}}, {"trafilatura": {}}, {"language_id": {}},
                      {"minhash_dedup": {}}, {"jsonl_writer": {}}],
            "tokenizer": {"vocab_size": 2000},
            "shards": {"val_fraction": 0.1, "tasks": 2},  # encoded as two tasks of the executor
        })
        summary = Runner(cfg).run()
        shards = sorted((e["file"], e["sha256"]) for e in json.loads((out / "shards" / "manifest.json").read_text())["shards"])
        results[kind] = (kept_ids(out), (out / "dedup" / "clusters.jsonl").read_text(), summary["steps"][3], shards)
    ray.shutdown()
    assert results["local"][0] == results["ray"][0]
    assert results["local"][1] == results["ray"][1]
    assert results["local"][3] == results["ray"][3] and any("-001-" in f for f, _ in results["ray"][3])
    dedup = results["ray"][2]
    assert dedup["dropped"].get("exact_duplicate", 0) + dedup["dropped"].get("near_duplicate", 0) >= len(docs) // 4 - 2
