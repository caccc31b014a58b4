"""The token shard format, shared by the tokenizer (which writes it) and the trainer (which reads it).

A shard is an Arrow IPC **stream** file (``train-00000.arrow``, ``val-00000.arrow``), one row per
document, so ``datasets.Dataset.from_file`` and ``pyarrow.ipc.open_stream`` open it directly:

==============  ===========================  ==========================================
column          type                         meaning
==============  ===========================  ==========================================
id              string                       document id from the pipeline
source          string                       metadata.source
language        string                       metadata.language ("" when unknown)
quality_score   float32                      metadata.quality_score (NaN when unknown)
num_bytes       int64                        UTF-8 bytes of the document's text
tokens          list<uint16> (or uint32)     token ids, no separators
==============  ===========================  ==========================================

``manifest.json`` beside the shards lists every shard (rows, tokens, bytes, sha256), the
totals per split, the tokenizer (path, sha256, vocab size, eos id) and the configuration that
made them. The trainer packs documents with the tokenizer's eos id between them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from corpus.core.io import sha256_file

MANIFEST = "manifest.json"


def token_type(vocab_size: int) -> pa.DataType:
    return pa.uint16() if vocab_size <= 2**16 else pa.uint32()


def schema(vocab_size: int) -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("source", pa.string()),
            ("language", pa.string()),
            ("quality_score", pa.float32()),
            ("num_bytes", pa.int64()),
            ("tokens", pa.list_(token_type(vocab_size))),
        ]
    )


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no {MANIFEST}; not a shard folder (or its writing did not finish)")
    return json.loads(path.read_text())


def token_count(table: pa.Table) -> int:
    """Tokens in a shard table (all documents)."""
    return int(pa.compute.sum(pa.compute.list_value_length(table.column("tokens"))).as_py() or 0)


def open_shard(path: str | Path) -> pa.Table:
    """Memory-maps a shard: the token buffers are views of the file, not copies."""
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_stream(source).read_all()


def split_tokens(folder: str | Path, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(flat token ids, document offsets) per record batch of a split's shards, zero-copy views
    of the memory-mapped files."""
    folder = Path(folder)
    out = []
    for entry in read_manifest(folder)["shards"]:
        if entry["split"] != split:
            continue
        table = open_shard(folder / entry["file"])
        for chunk in table.column("tokens").chunks:
            if len(chunk) == 0:
                continue
            offsets = chunk.offsets.to_numpy(zero_copy_only=True)
            out.append((chunk.flatten().to_numpy(zero_copy_only=True), offsets - offsets[0]))
    return out


def stats(folder: str | Path) -> dict:
    """Totals per split, bytes per token, languages, document lengths and quality scores."""
    import pyarrow.compute as pc

    folder = Path(folder)
    manifest = read_manifest(folder)
    out = {"tokenizer": manifest["tokenizer"], "dtype": manifest["dtype"], "shards": len(manifest["shards"]), "splits": {}}
    for split, totals in manifest["totals"].items():
        tables = [open_shard(folder / e["file"]).select(["language", "quality_score", "tokens"])
                  for e in manifest["shards"] if e["split"] == split]
        if not tables:
            continue
        t = pa.concat_tables(tables)
        lengths = pc.list_value_length(t.column("tokens")).to_numpy(zero_copy_only=False)
        langs = t.column("language").value_counts().to_pylist()
        q = t.column("quality_score").to_numpy(zero_copy_only=False)
        q = q[~np.isnan(q)]
        out["splits"][split] = {
            **totals,
            "bytes_per_token": round(totals["bytes"] / totals["tokens"], 4) if totals["tokens"] else None,
            "tokens_per_document": {p: int(np.percentile(lengths, p)) for p in (0, 10, 50, 90, 100)},
            "languages": {d["values"] or "?": d["counts"] for d in sorted(langs, key=lambda d: -d["counts"])},
            "quality_score": {"mean": round(float(q.mean()), 4), "min": round(float(q.min()), 4),
                              "max": round(float(q.max()), 4)} if len(q) else None,
        }
    return out


def verify(folder: str | Path) -> list[str]:
    """Problems found, as messages naming the shard: a changed byte (sha256), a shard that does
    not open, rows or tokens that differ from the manifest, a missing or unlisted shard."""


    folder = Path(folder)
    manifest = read_manifest(folder)
    problems = []
    listed = set()
    for e in manifest["shards"]:
        path = folder / e["file"]
        listed.add(e["file"])
        if not path.exists():
            problems.append(f"{e['file']}: missing")
            continue
        if sha256_file(path) != e["sha256"]:
            problems.append(f"{e['file']}: sha256 differs from the manifest (the file changed or is corrupt)")
        try:
            t = open_shard(path)
            tokens = token_count(t)
            if t.num_rows != e["rows"] or tokens != e["tokens"]:
                problems.append(f"{e['file']}: {t.num_rows} rows, {tokens} tokens; the manifest says {e['rows']}, {e['tokens']}")
        except (pa.ArrowInvalid, OSError) as err:
            problems.append(f"{e['file']}: does not open as an Arrow stream ({err})")
    for path in sorted(folder.glob("*.arrow")):
        if path.name not in listed:
            problems.append(f"{path.name}: not in the manifest")
    return problems
