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
