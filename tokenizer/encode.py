"""Encode curated documents into Arrow token shards (format: ``corpus/shards.py``).

The train/val split is decided by a hash of each document's id, so it does not depend on the
order of the input or on how many processes wrote it; when the corpus is so small that the
hash puts no document in val, the document with the smallest hash goes there. Each shard is
written under a temporary name and renamed when complete; ``manifest.json`` comes last, and a
re-run with the same tokenizer and settings skips the work.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
from loguru import logger

from corpus.io import atomic_path, sha256_file, write_json
from corpus.shards import MANIFEST, schema, token_type
from tokenizer.sp import Tokenizer
from tokenizer.train import hash_fraction, iter_documents


@dataclass
class ShardsConfig:
    val_fraction: float = 0.01
    shard_tokens: int = 100_000_000
    batch_documents: int = 512
    num_threads: int = -1

    def __post_init__(self):
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be between 0 and 1")


class _ShardWriter:
    """Rolls ``<split>-NNNNN.arrow`` files at ``shard_tokens`` tokens."""

    def __init__(self, folder: Path, split: str, schema_: pa.Schema, shard_tokens: int):
        self.folder, self.split, self.schema, self.shard_tokens = folder, split, schema_, shard_tokens
        self.index, self.writer, self.ctx, self.entry = 0, None, None, None
        self.entries: list[dict] = []

    def _open(self):
        name = f"{self.split}-{self.index:05d}.arrow"
        self.ctx = atomic_path(self.folder / name)
        tmp = self.ctx.__enter__()
        self.sink = pa.OSFile(str(tmp), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.entry = {"file": name, "split": self.split, "rows": 0, "tokens": 0, "bytes": 0}

    def write(self, batch: pa.RecordBatch, tokens: int, nbytes: int):
        if self.writer is None:
            self._open()
        self.writer.write_batch(batch)
        self.entry["rows"] += batch.num_rows
        self.entry["tokens"] += tokens
        self.entry["bytes"] += nbytes
        if self.entry["tokens"] >= self.shard_tokens:
            self.close()

    def close(self):
        if self.writer is None:
            return
        self.writer.close()
        self.sink.close()
        self.ctx.__exit__(None, None, None)
        self.entry["sha256"] = sha256_file(self.folder / self.entry["file"])
        self.entries.append(self.entry)
        self.writer, self.index = None, self.index + 1


def write_shards(docs, model_file, out_dir, cfg: ShardsConfig, pipeline: dict | None = None) -> dict:
    out_dir = Path(out_dir)
    tok = Tokenizer(model_file)
    tok_sha = sha256_file(model_file)
    settings = asdict(cfg)
    manifest_path = out_dir / MANIFEST
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("tokenizer", {}).get("sha256") == tok_sha and old.get("config") == settings:
            logger.info(f"shards: {out_dir} already written with this tokenizer and settings, skipping")
            return old
        manifest_path.unlink()  # the old shards no longer match: rewrite them all
    inputs = docs if isinstance(docs, (list, tuple)) else [docs]
    t0 = time.time()

    # pass 1: ids only, to guarantee a non-empty val split on tiny corpora
    fractions = [hash_fraction(str(d.get("id")), "split") for d in iter_documents(inputs) if d.get("text")]
    if not fractions:
        raise ValueError(f"shards: no documents in {[str(i) for i in inputs]}")
    threshold = cfg.val_fraction
    if not any(f < threshold for f in fractions) and len(fractions) > 1:
        threshold = math.nextafter(min(fractions), 1.0)

    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.arrow"):
        old.unlink()
    sch = schema(tok.vocab_size)
    writers = {s: _ShardWriter(out_dir, s, sch, cfg.shard_tokens) for s in ("train", "val")}
    ttype = token_type(tok.vocab_size)

    def flush(split: str, rows: list[dict]):
        if not rows:
            return
        texts = [r["text"] for r in rows]
        ids = tok.encode_batch(texts, num_threads=cfg.num_threads)
        nbytes = [len(t.encode("utf-8")) for t in texts]
        meta = [r.get("metadata") or {} for r in rows]
        batch = pa.record_batch(
            [
                pa.array([str(r["id"]) for r in rows], pa.string()),
                pa.array([str(m.get("source", "")) for m in meta], pa.string()),
                pa.array([str(m.get("language", "")) for m in meta], pa.string()),
                pa.array([float(m["quality_score"]) if m.get("quality_score") is not None else float("nan") for m in meta], pa.float32()),
                pa.array(nbytes, pa.int64()),
                pa.array(ids, pa.list_(ttype)),
            ],
            schema=sch,
        )
        writers[split].write(batch, sum(map(len, ids)), sum(nbytes))
        rows.clear()

    pending = {"train": [], "val": []}
    n_docs = 0
    for doc in iter_documents(inputs):
        if not doc.get("text"):
            continue
        split = "val" if hash_fraction(str(doc.get("id")), "split") < threshold else "train"
        pending[split].append(doc)
        n_docs += 1
        if len(pending[split]) >= cfg.batch_documents:
            flush(split, pending[split])
        if n_docs % 10_000 == 0:
            logger.info(f"shards: {n_docs} documents encoded")
    for split in ("train", "val"):
        flush(split, pending[split])
        writers[split].close()

    shards = writers["train"].entries + writers["val"].entries
    totals = {
        split: {
            "documents": sum(e["rows"] for e in shards if e["split"] == split),
            "tokens": sum(e["tokens"] for e in shards if e["split"] == split),
            "bytes": sum(e["bytes"] for e in shards if e["split"] == split),
        }
        for split in ("train", "val")
    }
    manifest = {
        "format": "corpus-arrow-tokens/1",
        "shards": shards,
        "totals": totals,
        "dtype": str(ttype),
        "tokenizer": {
            "path": os.path.relpath(Path(model_file).resolve(), out_dir.resolve()),
            "sha256": tok_sha,
            "vocab_size": tok.vocab_size,
            "eos_id": tok.eos_id,
        },
        "config": settings,
        "pipeline": pipeline,
        "seconds": round(time.time() - t0, 2),
    }
    write_json(manifest_path, manifest)
    t = totals
    logger.info(
        f"shards: {t['train']['documents']} train documents ({t['train']['tokens']} tokens), "
        f"{t['val']['documents']} val ({t['val']['tokens']} tokens) in {manifest['seconds']}s"
    )
    return manifest
