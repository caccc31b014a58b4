"""minhash_dedup: exact and near duplicates found (Chinese too), distinct pages kept, a
deterministic keep rule, and the same kept set whatever the number of tasks."""

import gzip
import json

import numpy as np
import pytest
from datatrove.data import Document

from corpus.config import config_from_dict
from corpus.extract import TrafilaturaExtractor
from corpus.pipeline import Runner
from corpus.readers import WarcReader
from corpus.dedup.step import MinhashDedup
from corpus.filters.language import LanguageID
from tests.conftest import funnel_of


def run_dedup(docs, tmp_path, **params):
    """The stages as the runner chains them, on one task."""
    sig, middle, filt = MinhashDedup(**params).stages(str(tmp_path / "dedup"))
    passed = list(sig.run(iter(docs)))
    for stage, _ in middle:
        list(stage.run(None))
    kept = list(filt.run(iter(passed)))
    report = [json.loads(line) for line in (tmp_path / "dedup" / "clusters.jsonl").read_text().splitlines()]
    return kept, report, filt


@pytest.fixture(scope="module")
def pages():
    from tests.conftest import shared_path

    reader = WarcReader([str(shared_path("warc", "resiliparse", "warcfile.warc.gz"))])
    docs = list(LanguageID().run(TrafilaturaExtractor().run(reader.run())))
    return {lang: [d for d in docs if d.metadata["language"] == lang and len(d.text) > 800] for lang in ("zh", "en", "ru")}


def variant(doc, new_id, nav):
    """The same page as served again: other navigation, another date line."""
    return Document(text=nav + "\n" + doc.text + "\n更新日期：2024-05-06 · Updated 2024", id=new_id, metadata=dict(doc.metadata))


def test_chinese_near_duplicates_found_and_distinct_pages_kept(pages, tmp_path):
    zh = pages["zh"]
    assert len(zh) >= 2
    docs = list(zh) + [variant(zh[0], "copy-of-0", "首页 | 新闻 | 体育 | 财经 | 娱乐 | 联系我们")]
    kept, report, filt = run_dedup(docs, tmp_path)
    kept_ids = {d.id for d in kept}
    assert "copy-of-0" not in kept_ids or zh[0].id not in kept_ids
    assert all(d.id in kept_ids for d in zh[1:]), "distinct Chinese pages are not merged"
    assert len(report) == 1 and report[0]["removed"][0]["reason"] == "near_duplicate"
    assert report[0]["removed"][0]["similarity"] >= 0.8 and report[0]["size"] == 2
    assert funnel_of(filt).dropped["near_duplicate"] == 1


def test_exact_duplicates_and_keep_rule(pages, tmp_path):
    en = pages["en"][0]
    a = Document(text=en.text, id="b-low", metadata={"quality_score": 0.2})
    b = Document(text=en.text.upper(), id="a-high", metadata={"quality_score": 0.9})  # same after normalisation
    c = Document(text=en.text, id="c-low", metadata={"quality_score": 0.2})
    kept, report, _ = run_dedup([a, b, c] + pages["ru"], tmp_path)
    ids = [d.id for d in kept]
    assert "a-high" in ids and "b-low" not in ids and "c-low" not in ids  # highest quality_score kept
    assert all(d.id in ids for d in pages["ru"])
    entry = report[0]
    assert entry["kept"] == "a-high" and {r["reason"] for r in entry["removed"]} == {"exact_duplicate"}
    assert next(d for d in kept if d.id == "a-high").metadata["dedup_cluster"] == "a-high"


def test_below_threshold_is_kept(pages, tmp_path):
    zh = pages["zh"][0]
    half = Document(text=zh.text[: len(zh.text) // 2], id="half", metadata={})
    kept, report, _ = run_dedup([zh, half], tmp_path, threshold=0.8)
    assert {d.id for d in kept} == {zh.id, "half"} and report == []


@pytest.mark.parametrize("tasks", [1, 3])
def test_same_kept_set_for_any_task_count(pages, tmp_path, tasks):
    folder = tmp_path / "in"
    folder.mkdir()
    docs = pages["zh"] + pages["en"] + pages["ru"]
    for i, d in enumerate(docs):
        (folder / f"{i:03d}.txt").write_text(d.text)
    (folder / "dup-a.txt").write_text(docs[0].text)
    (folder / "dup-b.txt").write_text(variant(docs[1], "x", "首页 | 新闻 | 联系我们").text)
    cfg = config_from_dict({
        "output_dir": str(tmp_path / "run"),
        "executor": {"type": "local", "tasks": tasks, "workers": 1},
        "save_removed": True,
        "steps": [{"files_reader": {"paths": [str(folder / "*.txt")]}}, {"minhash_dedup": {}}, {"jsonl_writer": {}}],
    })
    summary = Runner(cfg).run()
    dedup = summary["steps"][1]
    assert dedup["documents_in"] == len(docs) + 2 and dedup["documents_out"] == len(docs)
    assert dedup["dropped"] == {"exact_duplicate": 1, "near_duplicate": 1}
    kept = sorted(json.loads(line)["id"] for f in (tmp_path / "run" / "docs").glob("*.jsonl.gz") for line in gzip.open(f, "rt"))
    removed = [json.loads(line) for f in (tmp_path / "run" / "removed" / "02-minhash_dedup").glob("*.jsonl.gz")
               for line in gzip.open(f, "rt")]
    assert sorted(r["metadata"]["filter_reason"] for r in removed) == ["exact_duplicate", "near_duplicate"]
    # keep rule: equal quality, so the longest (the variant with navigation), then the smallest id
    assert kept == sorted(["dup-b.txt"] + [f"{i:03d}.txt" for i in range(len(docs)) if i != 1])


def test_signatures_equal_datasketch_minhash(pages):
    """The batched signatures are datasketch's MinHash, bit for bit."""
    from datasketch import MinHash

    from corpus.dedup.minhash import ShingleHasher, minhash_batch, normalize, shingle_hash, units

    dd = MinhashDedup()
    a, b = dd.params.permutations()
    hasher = ShingleHasher(5)
    docs = pages["zh"][:3] + pages["en"][:3] + pages["ru"][:2] + [
        Document(text="short", id="s", metadata={}), Document(text="!!", id="e", metadata={}),
        Document(text="Ünïcödé — “quotes”, ½ and ２０２４年 mixed 中文 text " * 5, id="u", metadata={})]
    zh = lambda d: d.metadata.get("language") == "zh"  # noqa: E731
    ours = np.empty((len(docs), 128), np.uint32)
    for flag in (False, True):
        sel = [i for i, d in enumerate(docs) if zh(d) == flag]
        ours[sel] = minhash_batch(*hasher([normalize(docs[i].text) for i in sel], flag), a, b, chunk=1000)
    for doc, sig in zip(docs, ours):
        us = units(doc.text, zh(doc))
        n = min(5, len(us))
        shingles = {tuple(us[i : i + n]) for i in range(len(us) - n + 1)} if us else set()
        m = MinHash(num_perm=128, seed=1, scheme="affine32", hashfunc=lambda sh, u=zh(doc): shingle_hash(sh, u))
        m.update_batch(list(shingles))
        assert np.array_equal(m.hashvalues, sig), doc.id


def test_pairs_stage_scales_over_tasks(pages, tmp_path):
    """Signatures from two tasks, pairs from three: same clusters as one task."""
    docs = pages["zh"] + pages["en"] + [variant(pages["zh"][0], "v0", "首页 | 新闻"), variant(pages["en"][0], "v1", "Home | News")]
    sig, middle, filt = MinhashDedup().stages(str(tmp_path / "dedup"))
    halves = [docs[0::2], docs[1::2]]
    passed = [list(sig.run(iter(h), rank=r, world_size=2)) for r, h in enumerate(halves)]
    pairs, clusters = middle[0][0], middle[1][0]
    for r in range(3):
        list(pairs.run(None, rank=r, world_size=3))
    list(clusters.run(None))
    kept = [d.id for r in range(2) for d in filt.run(iter(passed[r]), rank=r, world_size=2)]
    assert len(kept) == len(docs) - 2
    assert ("v0" in kept) != (pages["zh"][0].id in kept) and ("v1" in kept) != (pages["en"][0].id in kept)


def test_two_dedup_steps_keep_separate_folders(pages, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    docs = pages["zh"] + pages["en"] + pages["ru"]
    for i, d in enumerate(docs + docs[:2]):
        (folder / f"{i:03d}.txt").write_text(d.text)
    cfg = config_from_dict({
        "output_dir": str(tmp_path / "run"),
        "steps": [{"files_reader": {"paths": [str(folder / "*.txt")]}}, {"minhash_dedup": {}},
                  {"quality_score": {}}, {"minhash_dedup": {"threshold": 0.5}}, {"jsonl_writer": {}}],
    })
    summary = Runner(cfg).run()
    assert summary["steps"][1]["dropped"] == {"exact_duplicate": 2}
    assert summary["steps"][3]["documents_in"] == len(docs)
    assert (tmp_path / "run" / "dedup" / "clusters.jsonl").exists() and (tmp_path / "run" / "dedup-2" / "clusters.jsonl").exists()


def _shakespeare_docs(shared, n=3000, words=60):
    """Real text cut into ``n`` short documents, a tenth of them again with one word changed and a
    twentieth again verbatim: near and exact duplicates among thousands of distinct documents."""
    import random

    text = (shared("tinyshakespeare") / "input.txt").read_text().split()
    docs = [Document(text=" ".join(text[i * words:(i + 1) * words]), id=f"d{i:05d}", metadata={}) for i in range(n)]
    rng = random.Random(0)
    for k in rng.sample(range(n), n // 10):
        w = docs[k].text.split()
        w[rng.randrange(words)] = "changed"
        docs.append(Document(text=" ".join(w), id=f"near{k:05d}", metadata={}))
    docs += [Document(text=docs[k].text, id=f"copy{k:05d}", metadata={}) for k in rng.sample(range(n), n // 20)]
    return docs


def test_a_memory_budget_spills_to_disk_with_the_same_output(shared, tmp_path):
    """max_memory_mb bounds the signatures buffer (sorted runs spilled to disk) and the pairs
    merge (one hash range at a time): a budget far below the data gives byte-identical clusters
    and decisions, and the same kept documents, as the default budget."""
    import os

    docs = _shakespeare_docs(shared)
    results = {}
    for budget in (512, 0.1):
        folder = tmp_path / f"budget-{budget}"
        sig, middle, filt = MinhashDedup(threshold=0.7, max_memory_mb=budget).stages(str(folder))
        halves = [docs[0::2], docs[1::2]]
        passed = [list(sig.run(iter(h), rank=r, world_size=2)) for r, h in enumerate(halves)]
        runs = len(os.listdir(folder / "bands" / "000"))
        for stage, _ in middle:
            list(stage.run(None))
        kept = sorted(d.id for r in range(2) for d in filt.run(iter(passed[r]), rank=r, world_size=2))
        decisions = [pa_table.to_pylist() for pa_table in (
            __import__("pyarrow").ipc.open_file(str(folder / "decisions" / f"{r:05d}.arrow")).read_all() for r in range(2))]
        results[budget] = ((folder / "clusters.jsonl").read_bytes(), decisions, kept, runs,
                           len(os.listdir(folder / "pairs")))
    default, small = results[512], results[0.1]
    assert default[3] == 2 and small[3] > 2 * 3, "the small budget spills several sorted runs per task"
    assert small[4] > default[4], "the small budget merges each band in several hash ranges"
    assert small[0] == default[0] and small[1] == default[1] and small[2] == default[2]
    clusters = [json.loads(line) for line in default[0].decode().splitlines()]
    removed = {r["id"]: r["reason"] for c in clusters for r in c["removed"]}
    # 300 variants and 150 copies (a copy whose original's variant is kept counts as near)
    assert len(removed) >= 0.95 * 450 and sum(reason == "exact_duplicate" for reason in removed.values()) >= 0.8 * 150
    assert len(default[2]) == len(docs) - len(removed)


def test_input_read_again_or_through_work_gives_the_same_result(shared, tmp_path):
    """Only a reader before the barrier: the filter job reads the input again (no copy in work/);
    another step before it: the documents go through work/ (zstd). Same clusters, same kept
    documents; work/ is gone after the run."""
    docs = _shakespeare_docs(shared, n=1500)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs))
    outputs = {}
    for name, middle in (("again", []), ("work", [{"language_id": {}}])):
        out = tmp_path / name
        cfg = config_from_dict({"output_dir": str(out), "executor": {"tasks": 2, "workers": 1},
                                "steps": [{"jsonl_reader": {"paths": [str(src)]}}, *middle,
                                          {"minhash_dedup": {"threshold": 0.7}}, {"jsonl_writer": {}}]})
        runner = Runner(cfg)
        jobs = runner.plan()
        assert any(type(s).__name__ == "MinhashKeys" for s in jobs[-1].steps) == (name == "again")
        summary = runner.run()
        assert not (out / "work").exists()
        kept = sorted(json.loads(line)["id"] for f in (out / "docs").glob("*.jsonl.gz") for line in gzip.open(f, "rt"))
        outputs[name] = ((out / "dedup" / "clusters.jsonl").read_text(), kept, summary["steps"][-2])
    assert outputs["again"][0] == outputs["work"][0] and outputs["again"][1] == outputs["work"][1]
    dedup = outputs["again"][2]
    assert dedup["documents_in"] == len(docs) and dedup["documents_out"] == len(outputs["again"][1])
