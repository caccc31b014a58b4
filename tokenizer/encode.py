"""Encode curated documents into Arrow token shards (format: ``corpus/core/shards.py``).

The train/val split is decided by a hash of each document's id, so it does not depend on the
order of the input or on how many processes wrote it; when the corpus is so small that the
hash puts no document in val, the document with the smallest hash is moved there. ``tasks``
processes share the input files; each writes its own ``<split>-<task>-NNNNN.arrow`` shards. Each shard is
written under a temporary name and renamed when complete; ``manifest.json`` comes last, and a
re-run with the same tokenizer and settings skips the work.
"""

from __future__ import annotations

import itertools
import json
import os
import posixpath
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from loguru import logger

from corpus.core.io import atomic_path, is_remote, local_copy, remove_tree, run_path, sha256_file, write_arrow, write_json
from corpus.core.registry import require_at_least
from corpus.core.shards import MANIFEST, open_shard, schema, token_count, token_type
from corpus.tokenizer.sp import Tokenizer
from corpus.readers import documents, expand_inputs
from corpus.tokenizer.train import hash_fraction


TASKS = ".tasks"  # what each encoding task wrote, and the executor's logs: hidden, not shards


@dataclass
class ShardsConfig:
    val_fraction: float = 0.01
    shard_tokens: int = 100_000_000
    batch_documents: int = 8192  # documents encoded (and written as one Arrow record batch) at once
    batch_bytes: int = 32_000_000  # ... or fewer, when their text reaches this many bytes
    tasks: int = 1  # executor tasks, each encoding a share of the input (0: one per CPU)
    num_threads: int = -1  # sentencepiece's encoding threads when tasks is 1

    def __post_init__(self):
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be between 0 and 1")
        require_at_least(self, 1, "shard_tokens", "batch_documents", "batch_bytes")
        if self.tasks < 0:
            raise ValueError("tasks must be at least 0 (0: one per CPU)")
        if self.num_threads == 0 or self.num_threads < -1:
            raise ValueError("num_threads must be at least 1, or -1 (sentencepiece's default)")


class _ShardWriter:
    """Rolls ``<prefix>-NNNNN.arrow`` files at ``shard_tokens`` tokens."""

    def __init__(self, folder: Path, prefix: str, split: str, schema_: pa.Schema, shard_tokens: int):
        self.folder, self.prefix, self.split, self.schema, self.shard_tokens = folder, prefix, split, schema_, shard_tokens
        self.index, self.writer, self.ctx, self.entry = 0, None, None, None
        self.entries: list[dict] = []

    def _open(self):
        name = f"{self.prefix}-{self.index:05d}.arrow"
        self.ctx = atomic_path(self.folder / name)
        tmp = self.tmp = self.ctx.__enter__()
        self.sink = pa.OSFile(str(tmp), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.entry = {"file": name, "split": self.split, "rows": 0, "tokens": 0, "bytes": 0}

    def write(self, batch: pa.RecordBatch, tokens: np.ndarray, nbytes: np.ndarray):
        """Append rows, cutting the batch where a shard reaches ``shard_tokens`` (whole documents)."""
        start = 0
        while start < batch.num_rows:
            if self.writer is None:
                self._open()
            room = self.shard_tokens - self.entry["tokens"]
            fits = int(np.searchsorted(np.cumsum(tokens[start:]), room, side="right"))
            take = max(fits, 1 if self.entry["rows"] == 0 else 0)
            if take:
                self.writer.write_batch(batch.slice(start, take))
                self.entry["rows"] += take
                self.entry["tokens"] += int(tokens[start : start + take].sum())
                self.entry["bytes"] += int(nbytes[start : start + take].sum())
                start += take
            if start < batch.num_rows or self.entry["tokens"] >= self.shard_tokens:
                self.close()

    def close(self):
        if self.writer is None:
            return
        self.writer.close()
        self.sink.close()
        self.entry["sha256"] = sha256_file(self.tmp)  # before it is published (on object storage, uploaded)
        self.ctx.__exit__(None, None, None)
        self.entries.append(self.entry)
        self.writer, self.index = None, self.index + 1


def _list_array(ids: list[list[int]], ttype: pa.DataType) -> pa.ListArray:
    """Token id lists as an Arrow list array, built from one flat numpy buffer (much faster than
    converting the Python lists one by one)."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int32, count=len(ids))
    offsets = np.zeros(len(ids) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(ids), dtype=ttype.to_pandas_dtype(), count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=ttype))


def _encode_task(task: int, tasks: int, inputs: list[str], model_file: str, out_dir: str, cfg: ShardsConfig,
                 threshold: float, num_threads: int) -> tuple[list[dict], int, tuple[float, str], int]:
    """One task: encode its share of the documents of ``inputs`` (whole files and parts of large
    ones, ``corpus.readers.documents``) into ``<split>-<task>-NNNNN.arrow`` shards. Returns the
    shard entries, the document count, (smallest split hash, its id) and the val count."""
    with local_copy(model_file) as local:  # the model may be in a run folder on object storage
        tok = Tokenizer(local)
    sch = schema(tok.vocab_size)
    ttype = token_type(tok.vocab_size)
    out = run_path(out_dir)
    writers = {s: _ShardWriter(out, f"{s}-{task:03d}", s, sch, cfg.shard_tokens) for s in ("train", "val")}
    pending: dict[str, list[dict]] = {"train": [], "val": []}
    pending_bytes = {"train": 0, "val": 0}
    n_docs, n_val, smallest = 0, 0, (1.0, "")

    def flush(split: str):
        rows = pending[split]
        if not rows:
            return
        texts = [r.text for r in rows]
        ids = tok.encode_batch(texts, num_threads=num_threads)
        nbytes = [len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in texts]
        meta = [r.metadata for r in rows]
        batch = pa.record_batch(
            [
                pa.array([str(r.id) for r in rows], pa.string()),
                pa.array([str(m.get("source", "")) for m in meta], pa.string()),
                pa.array([str(m.get("language", "")) for m in meta], pa.string()),
                pa.array([float(m["quality_score"]) if m.get("quality_score") is not None else float("nan") for m in meta],
                         pa.float32()),
                pa.array(nbytes, pa.int64()),
                _list_array(ids, ttype),
            ],
            schema=sch,
        )
        writers[split].write(batch, np.fromiter(map(len, ids), np.int64, len(ids)), np.array(nbytes, np.int64))
        rows.clear()
        pending_bytes[split] = 0

    for doc in documents(inputs, task, tasks):
        if not doc.text:
            continue
        fraction = hash_fraction(str(doc.id), "split")
        smallest = min(smallest, (fraction, str(doc.id)))
        split = "val" if fraction < threshold else "train"
        n_val += split == "val"
        pending[split].append(doc)
        pending_bytes[split] += len(doc.text)
        n_docs += 1
        if len(pending[split]) >= cfg.batch_documents or pending_bytes[split] >= cfg.batch_bytes:
            flush(split)
        if n_docs % 20_000 == 0:
            logger.info(f"shards: task {task}: {n_docs} documents encoded")
    for split in ("train", "val"):
        flush(split)
        writers[split].close()
    return writers["train"].entries + writers["val"].entries, n_docs, smallest, n_val


class ShardEncoder(PipelineStep):
    """Shard encoding as executor tasks (local, Ray or Slurm, like the document steps): task
    ``rank`` encodes its share of the documents and records what it wrote in
    ``<out_dir>/.tasks/<rank>.json``, which ``write_shards`` gathers into the manifest."""

    name = "🔢 shards: encode"
    type = "🔢 - TOKENIZE"

    def __init__(self, inputs: list[str], model_file: str, out_dir: str, cfg: ShardsConfig, threshold: float):
        super().__init__()
        self.inputs, self.model_file, self.out_dir, self.cfg, self.threshold = inputs, model_file, out_dir, cfg, threshold

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for old in run_path(self.out_dir).glob(f"*-{rank:03d}-*.arrow"):  # an earlier, interrupted attempt
            old.unlink()
        threads = self.cfg.num_threads if world_size == 1 else 1
        with self.track_time():
            entries, n_docs, smallest, n_val = _encode_task(rank, world_size, self.inputs, self.model_file, self.out_dir,
                                                            self.cfg, self.threshold, threads)
        self.stat_update("documents", value=n_docs)
        write_json(run_path(self.out_dir) / TASKS / f"{rank:05d}.json",
                   {"entries": entries, "documents": n_docs, "smallest": list(smallest), "val": n_val})
        return iter(())


def run_local(name: str, steps: list, tasks: int, logs: Path) -> None:
    """Run steps as ``tasks`` datatrove tasks on this machine, as many at once as there are CPUs:
    how ``write_shards`` runs its encoder when no executor is given (outside a pipeline run)."""
    from datatrove.executor import LocalPipelineExecutor

    LocalPipelineExecutor(pipeline=steps, tasks=tasks, workers=min(tasks, os.cpu_count() or 1),
                          logging_dir=str(logs / name)).run()


def _carve_val(out_dir: Path, results: list, doc_id: str, tokens_for_val: int | None, tok: Tokenizer) -> dict:
    """Give val one document when no id hashed into it: the whole row of ``doc_id`` moves from its
    train shard into a new val shard (no re-encoding), or, with ``tokens_for_val``, only the
    last that many of its tokens (a split by position, nanoGPT-style, for a corpus of one or
    few documents), cut where both halves decode to the text exactly. Returns how it split."""
    for entries, *_ in results:
        for e in entries:
            if e["split"] != "train":
                continue
            table = open_shard(out_dir / e["file"])
            mask = pa.compute.equal(table.column("id"), doc_id)
            if not pa.compute.any(mask).as_py():
                continue
            moved, kept = table.filter(mask), table.filter(pa.compute.invert(mask))
            how = {"method": "document", "document": doc_id}
            if tokens_for_val is not None:
                row = moved.to_pylist()[0]
                ids, text = row["tokens"], tok.decode(row["tokens"])
                cut = max(1, len(ids) - tokens_for_val)
                while cut < len(ids) - 1 and tok.decode(ids[:cut]) + tok.decode(ids[cut:]) != text:
                    cut += 1  # not inside a character that byte pieces spell out
                head, tail = tok.decode(ids[:cut]), tok.decode(ids[cut:])
                parts = [dict(row, tokens=ids[:cut], num_bytes=len(head.encode("utf-8", "surrogatepass"))),
                         dict(row, id=f"{doc_id}#val", tokens=ids[cut:], num_bytes=len(tail.encode("utf-8", "surrogatepass")))]
                kept = pa.concat_tables([kept, pa.Table.from_pylist(parts[:1], schema=table.schema)])
                moved = pa.Table.from_pylist(parts[1:], schema=table.schema)
                how = {"method": "position", "document": doc_id, "cut_token": cut, "val_tokens": len(ids) - cut}
            task = e["file"].split("-")[1]
            val = {"file": f"val-{task}-00000.arrow", "split": "val"}
            for target, part in ((e, kept), (val, moved)):
                write_arrow(out_dir / target["file"], part, stream=True)
                target["rows"] = part.num_rows
                target["tokens"] = token_count(part)
                target["bytes"] = int(pa.compute.sum(part.column("num_bytes")).as_py() or 0)
                target["sha256"] = sha256_file(out_dir / target["file"])
            entries.append(val)
            return how
    raise ValueError(f"shards: document {doc_id!r} is in no train shard")


def _longest_row(out_dir: Path, entry: dict) -> tuple[str, int]:
    table = open_shard(out_dir / entry["file"])
    lengths = pa.compute.list_value_length(table.column("tokens"))
    i = int(pa.compute.index(lengths, pa.compute.max(lengths)).as_py())
    return table.column("id")[i].as_py(), lengths[i].as_py()


def _row_tokens(out_dir: Path, results: list, doc_id: str) -> int:
    for entries, *_ in results:
        for e in entries:
            t = open_shard(out_dir / e["file"])
            mask = pa.compute.equal(t.column("id"), doc_id)
            if pa.compute.any(mask).as_py():
                return token_count(t.filter(mask))
    return 0


def _relative(model_file, out_dir) -> str:
    """The tokenizer's path as the manifest records it: relative to the shards (a URL when the
    two are on different storage)."""
    if is_remote(model_file) or is_remote(out_dir):
        if type(model_file) is type(out_dir) and str(model_file).split("://")[0] == str(out_dir).split("://")[0]:
            return posixpath.relpath(model_file.path, out_dir.path)
        return str(model_file)
    return os.path.relpath(Path(model_file).resolve(), Path(out_dir).resolve())


def write_shards(docs, model_file, out_dir, cfg: ShardsConfig, pipeline: dict | None = None,
                 executor: Callable | None = None) -> dict:
    """Encode the documents of ``docs`` (folders, files or globs) into shards in ``out_dir``, as
    ``cfg.tasks`` executor tasks, each taking a share of the input (whole files, parts of large
    ones). ``executor(name, steps, tasks, logs)`` runs them (a pipeline run passes its own: local,
    Ray or Slurm); without one they run on this machine. Skips the work when the manifest there
    was made with the same tokenizer and settings."""
    out_dir, model_file = run_path(out_dir), run_path(model_file)
    tok_sha = sha256_file(model_file)
    settings = asdict(cfg)
    manifest_path = out_dir / MANIFEST
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("tokenizer", {}).get("sha256") == tok_sha and old.get("config") == settings:
            logger.info(f"shards: {out_dir} already written with this tokenizer and settings, skipping")
            return old
        manifest_path.unlink()  # the old shards no longer match: rewrite them all
    inputs = [str(i) for i in (docs if isinstance(docs, (list, tuple)) else [docs])]
    expand_inputs(inputs)  # no input: one clear error before any work
    tasks = max(1, cfg.tasks or os.cpu_count() or 1)
    t0 = time.time()

    for old in out_dir.glob("*.arrow"):
        old.unlink()
    # what the tasks of an encoding that is being redone wrote, their completion markers with it
    remove_tree(out_dir / TASKS)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = ShardEncoder(inputs, str(model_file), str(out_dir), cfg, cfg.val_fraction)
    (executor or run_local)("shards", [encoder], tasks, out_dir / TASKS / "logs")
    results = []
    for rank in range(tasks):
        r = json.loads((out_dir / TASKS / f"{rank:05d}.json").read_text())
        results.append((r["entries"], r["documents"], tuple(r["smallest"]), r["val"]))
    n_docs = sum(r[1] for r in results)
    if n_docs == 0:
        raise ValueError(f"shards: no documents in {[str(i) for i in inputs]}")
    with local_copy(model_file) as local:
        tok = Tokenizer(local)
    how_split = {"method": "hash", "val_fraction": cfg.val_fraction}
    if sum(r[3] for r in results) == 0:
        # a corpus so small that no id hashed into val: the document with the smallest hash goes
        # there whole, unless it would be more than half the tokens (one long document, say):
        # then val gets the last val_fraction of the tokens of the longest document instead
        total = sum(e["tokens"] for r in results for e in r[0])
        first = min(r[2] for r in results)[1]
        if n_docs > 1 and _row_tokens(out_dir, results, first) <= total / 2:
            how_split.update(_carve_val(out_dir, results, first, None, tok))
        else:
            longest = max((_longest_row(out_dir, e) for r in results for e in r[0]), key=lambda x: x[1])[0]
            how_split.update(_carve_val(out_dir, results, longest, max(2, round(total * cfg.val_fraction)), tok))
    shards = sorted((e for r in results for e in r[0]), key=lambda e: (e["split"] != "train", e["file"]))
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
        "dtype": str(token_type(tok.vocab_size)),
        "tokenizer": {
            "path": _relative(model_file, out_dir),
            "sha256": tok_sha,
            "vocab_size": tok.vocab_size,
            "eos_id": tok.eos_id,
        },
        "config": settings,
        "split": how_split,
        "pipeline": pipeline,
        "seconds": round(time.time() - t0, 2),
    }
    write_json(manifest_path, manifest)
    t = totals
    logger.info(
        f"shards: {t['train']['documents']} train documents ({t['train']['tokens']} tokens), "
        f"{t['val']['documents']} val ({t['val']['tokens']} tokens), {tasks} tasks, {manifest['seconds']}s"
    )
    return manifest
