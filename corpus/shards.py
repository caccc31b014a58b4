"""Token shards in a notebook or the CLI: ``corpus.shards.open`` (a ``datasets.Dataset``),
``preview`` (decoded documents), ``stats``, ``verify``. The format itself is
``corpus.core.shards``; this module adds what needs the tokenizer and ``datasets``.
"""

from __future__ import annotations

from pathlib import Path

from corpus.core.io import sha256_file
from corpus.core.shards import local, open_shard, read_manifest, stats, verify  # noqa: F401  (the notebook API)
from corpus.tokenizer.sp import Tokenizer


def open(folder: str | Path, split: str | None = "train"):  # noqa: A001  (corpus.shards.open, like io.open)
    """The shards of a split (or all, with ``split=None``) as one ``datasets.Dataset``,
    memory-mapped: columns id, source, language, quality_score, num_bytes, tokens. ``folder``
    may be an fsspec URL (``s3://bucket/run/shards``): the shards are fetched to a local cache
    once, checked against the manifest."""
    import datasets

    folder = local(folder)
    files = [folder / e["file"] for e in read_manifest(folder)["shards"] if split is None or e["split"] == split]
    if not files:
        raise FileNotFoundError(f"{folder}: no {split} shards")
    parts = [datasets.Dataset.from_file(str(f)) for f in files]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def tokenizer(folder: str | Path) -> Tokenizer:
    """The tokenizer that encoded these shards (path from the manifest, checked against its sha256)."""
    folder = local(folder)
    info = read_manifest(folder)["tokenizer"]
    path = (folder / info["path"]).resolve()
    if sha256_file(path) != info["sha256"]:
        raise ValueError(f"{path} is not the tokenizer these shards were made with (sha256 differs)")
    return Tokenizer(path)


def preview(folder: str | Path, split: str = "val", n: int = 3, chars: int = 300) -> list[dict]:
    """The first ``n`` documents of a split, decoded: id, language, tokens, text (first ``chars``)."""
    folder = local(folder)
    ds, tok = open(folder, split), tokenizer(folder)
    rows = []
    for row in ds.select(range(min(n, len(ds)))):
        text = tok.decode(row["tokens"])
        rows.append({"id": row["id"], "language": row["language"], "quality_score": row["quality_score"],
                     "tokens": len(row["tokens"]), "text": text[:chars]})
    return rows
