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

Shards may be read from object storage (any fsspec URL): ``local(folder)`` fetches the manifest,
the shards and the tokenizer it names into a local cache once, checked against the manifest's
sha256, and every reader here (and the trainer) works on that copy, memory-mapped as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from corpus.core.io import atomic_path, is_remote, run_path, sha256_file

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


def cache_root() -> Path:
    """Where shards read from object storage are kept: ``$CORPUS_CACHE`` or ``~/.cache/corpus``."""
    return Path(os.environ.get("CORPUS_CACHE") or Path.home() / ".cache" / "corpus")


def local(folder: str | Path) -> Path:
    """A local shard folder: ``folder`` itself, or for a URL its copy in the cache. A file already
    there is kept when its sha256 is the manifest's; any other is fetched (to a temporary name,
    checked, then renamed). The tokenizer the manifest names comes too, at the same relative
    place, so ``corpus.shards.tokenizer`` finds it."""
    if not is_remote(folder):
        return Path(str(folder).removeprefix("file://"))
    import fsspec

    folder = str(folder).rstrip("/")
    fs, root = fsspec.core.url_to_fs(folder)
    key = hashlib.sha256(folder.encode()).hexdigest()[:16]
    base = cache_root() / "shards" / key  # mirrors the run folder around the shards
    here = base / posixpath.basename(root)
    try:
        manifest = json.loads(fs.cat_file(f"{root}/{MANIFEST}"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder}: no {MANIFEST}; not a shard folder (or its writing did not finish)") from None
    wanted = [(e["file"], e["sha256"]) for e in manifest["shards"]]
    tok = manifest.get("tokenizer") or {}
    if tok.get("path") and tok.get("sha256"):
        wanted.append((tok["path"], tok["sha256"]))  # relative to the shards, or (another storage) a URL
    for rel, sha in wanted:
        target = Path(posixpath.normpath(f"{here}/{rel}"))
        if base not in target.parents:
            raise ValueError(f"{folder}: the manifest names {rel!r}, outside the run folder")
        remote = posixpath.normpath(f"{root}/{rel}")
        info = fs.info(remote)  # the object's version as the store tells it (size, ETag or mtime)
        version = json.dumps({k: str(info.get(k)) for k in ("size", "ETag", "etag", "mtime", "LastModified", "md5Hash")
                              if info.get(k) is not None}, sort_keys=True)
        stamp = target.with_name(f".{target.name}.version")
        if target.exists() and stamp.exists() and stamp.read_text() == version and sha256_file(target) == sha:
            continue  # fetched before, and the object has not changed since
        with atomic_path(target) as tmp:
            fs.get_file(remote, str(tmp))
            if sha256_file(tmp) != sha:
                raise ValueError(f"{folder}/{rel}: sha256 differs from the manifest (the file changed or is corrupt)")
        stamp.write_text(version)
    with atomic_path(here / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest))
    return here


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a local shard folder, or of one at a URL."""
    if is_remote(folder):
        folder = local(folder)
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no {MANIFEST}; not a shard folder (or its writing did not finish)")
    return json.loads(path.read_text())


def token_count(table: pa.Table) -> int:
    """Tokens in a shard table (all documents)."""
    return int(pa.compute.sum(pa.compute.list_value_length(table.column("tokens"))).as_py() or 0)


def open_shard(path: str | Path) -> pa.Table:
    """Memory-maps a shard: the token buffers are views of the file, not copies (one on object
    storage is read into memory)."""
    path = run_path(path)
    if is_remote(path):
        return pa.ipc.open_stream(pa.BufferReader(path.read_bytes())).read_all()
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

    folder = local(folder)
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
    try:
        folder = local(folder)
    except ValueError as e:  # a shard on object storage that is not what the manifest says
        return [str(e)]
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
