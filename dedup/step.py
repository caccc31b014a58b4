"""Exact and near-duplicate removal with MinHash, in stages that scale across tasks and machines.

``minhash_dedup`` must see every document before it can decide, so the runner splits the
pipeline around it (a *barrier* step) into four stages, each a datatrove step that any executor
(local, Ray, Slurm) runs:

1. **signatures** (every task, last of the steps before it). Text is normalised (Unicode NFKC,
   case, punctuation, digits, whitespace) and cut into shingles: word 5-grams, or character
   5-grams for Chinese, Japanese, Thai and other scripts written without spaces. Signatures use
   datasketch's MinHash scheme (``affine32``: the MurmurHash3 pre-mix, then ``a*h + b`` mod 2^32
   with datasketch's own permutation parameters), computed for thousands of documents at once
   with numpy instead of shingle by shingle; a test checks they equal datasketch's own
   ``MinHash.update_batch`` bit for bit. Each task writes its signatures, a band hash per LSH
   band plus a content hash (the exact-duplicate "band"), each band's hashes *sorted*, and a
   small table of (id, quality_score, length). The band hashes are buffered up to half of
   ``max_memory_mb`` (``8 * (bands + 1)`` bytes a document: 120 bytes at the defaults), then
   spilled to disk as a sorted run; a task writes as many runs as its input needs.
2. **pairs** (one task per group of bands). For each band, the sorted runs of every task are
   merged one hash range at a time (ranges cut at quantiles of a sample of the runs, as many as
   it takes to keep each merge within ``max_memory_mb``, about 48 bytes a document): documents
   sharing a band hash are candidates, and each candidate pair is checked on its estimated
   Jaccard (the share of equal signature values) before it counts. Bands are laid out by
   datasketch's ``_optimal_param`` for ``band_threshold`` (default ``threshold - 0.1``): bands
   tuned at the threshold itself miss many pairs just above it, and the check keeps loose bands
   from chaining unrelated documents.
3. **clusters** (one task). Verified pairs are joined into clusters by scipy's connected
   components, on arrays, one file of pairs at a time (the clusters so far kept as stars), so
   memory grows with the number of documents in clusters, never with the pairs or the corpus:
   about 1.1 KB per document in a cluster, its id and its metadata row included (measured:
   205 MB for 69,000 such documents of 200,000, 127 MB for 1,000 of 10,000). Signature rows
   for the similarity checks are read from disk by window, never mapped. One document is kept per
   cluster: the highest ``quality_score``, then the longest text, then the smallest id. Writes
   ``clusters.jsonl`` (cluster, kept id, removed ids with reason and estimated similarity).
4. **filter** (every task, first of the steps after it). Drops the removed documents, with
   reason ``exact_duplicate`` (same normalised text as the kept one) or ``near_duplicate``, and
   stores ``metadata.dedup_cluster`` on every member of a cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from loguru import logger

from corpus.core.funnel import Filter, Funnel
from corpus.core.io import atomic_path, finished_files, is_remote, run_path, write_arrow
from corpus.core.registry import register
from corpus.dedup.minhash import (MinhashParams, ShingleHasher, band_hashes, connected_components, minhash_batch,
                                  normalize)
from corpus.filters.heuristics import is_unspaced

KEY = "dedup_key"  # metadata set by the signatures stage, read (and removed) by the filter



@register("minhash_dedup")
class MinhashDedup(PipelineStep):
    """Removes exact and near-duplicate documents (estimated Jaccard of shingles >= ``threshold``),
    keeping one per cluster (highest quality_score, then longest, then smallest id). A barrier:
    the runner splits it into signatures, pairs, clusters and filter stages. ``max_memory_mb``
    bounds the buffers of the signatures and pairs stages (per task): beyond it they spill sorted
    runs to disk and merge them a hash range at a time, with the same output."""

    name = "🫂 minhash_dedup"
    type = "🫂 - DEDUP"
    barrier = True

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, seed: int = 1,
                 band_threshold: float | None = None, max_memory_mb: float = 512):
        super().__init__()
        from datasketch.lsh import _optimal_param

        if not 0 < threshold < 1:
            raise ValueError("threshold must be between 0 and 1")
        if num_perm < 16 or ngram < 1:
            raise ValueError("num_perm must be at least 16 and ngram at least 1")
        band_threshold = band_threshold if band_threshold is not None else max(0.05, threshold - 0.1)
        if max_memory_mb < 0.1:
            raise ValueError("max_memory_mb must be at least 0.1")
        bands, rows = _optimal_param(band_threshold, num_perm, 0.5, 0.5)
        self.params = MinhashParams(threshold, num_perm, ngram, seed, bands, rows, max_memory_mb)
        self.folder: str | None = None

    def stages(self, folder: str):
        """(signatures step, [(step, tasks) of the middle jobs], filter step), sharing ``folder``."""
        self.folder = folder
        return MinhashSignatures(self.params, folder), [(MinhashPairs(self.params, folder), None),
                                                        (MinhashClusters(self.params, folder), 1)], MinhashFilter(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        raise RuntimeError("minhash_dedup is a barrier step: the pipeline runner splits it into stages")

    def renumber(self) -> "MinhashKeys":
        """For a job that reads the input again instead of the signatures stage's output."""
        return MinhashKeys()


class MinhashKeys(PipelineStep):
    """Gives documents read again the keys the signatures stage gave them (task and position):
    the same readers in the same task yield the same documents in the same order."""

    name = "🫂 minhash_dedup: keys"
    type = "🫂 - DEDUP"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for n, doc in enumerate(data):
            doc.metadata[KEY] = f"{rank}:{n}"
            yield doc


@contextlib.contextmanager
def _workspace(folder: str, fetch: tuple[str, ...] = ()):
    """The dedup folder as a local path for one stage's task: the folder itself on a local file
    system. On object storage, a local scratch folder with copies of the files ``fetch`` names
    (globs relative to the folder); what the task writes there is uploaded when it succeeds, each
    file whole (an object appears complete or not at all), before the task counts as done."""
    if not is_remote(folder):
        yield folder
        return
    remote = run_path(folder)
    with tempfile.TemporaryDirectory(prefix="corpus-dedup-") as scratch:
        fetched = set()
        for pattern in fetch:
            for src in remote.glob(pattern):
                rel = src.path[len(remote.path.rstrip("/")) + 1:]
                if src.name.startswith("."):
                    continue
                (Path(scratch) / rel).parent.mkdir(parents=True, exist_ok=True)
                remote.fs.get_file(src.path, os.path.join(scratch, rel))
                fetched.add(rel)
        yield scratch
        for path in sorted(Path(scratch).rglob("*")):
            rel = path.relative_to(scratch).as_posix()
            if path.is_file() and rel not in fetched and not path.name.startswith("."):
                remote.fs.put_file(str(path), f"{remote.path.rstrip('/')}/{rel}")


def _remove(folder: str, pattern: str) -> None:
    """Delete the files of ``folder`` (local or object storage) that ``pattern`` matches: what
    an earlier, interrupted attempt of a task left."""
    for path in run_path(folder).glob(pattern):
        if is_remote(path):
            path.fs.rm_file(path.path)
        else:
            path.unlink()


def _paths(folder: str, rank: int) -> dict[str, str]:
    return {
        "sig": os.path.join(folder, "signatures", f"{rank:05d}.u32"),
        "meta": os.path.join(folder, "signatures", f"{rank:05d}.arrow"),
        "bands": os.path.join(folder, "bands", "{band:03d}", f"{rank:05d}-{{run:04d}}.npy"),
    }


META_SCHEMA = pa.schema([("id", pa.string()), ("quality_score", pa.float64()), ("length", pa.int64()),
                         ("content_hash", pa.uint64())])
BUCKET_DTYPE = np.dtype([("hash", "<u8"), ("idx", "<u4")])
PAIR_DTYPE = np.dtype([("ra", "<u4"), ("ia", "<u4"), ("rb", "<u4"), ("ib", "<u4"), ("sim", "<f4")])
MERGE_BYTES_PER_ROW = 48  # the pairs stage's merge: the record, its owner, the sort order and the gathered columns


class _Stage(Funnel, PipelineStep):
    """A stage of minhash_dedup: its parameters and the folder the stages share."""

    type = "🫂 - DEDUP"

    def __init__(self, params: MinhashParams, folder: str):
        super().__init__()
        self.params, self.folder = params, folder


class MinhashSignatures(_Stage):
    name = "🫂 minhash_dedup: signatures"

    def __init__(self, params: MinhashParams, folder: str, batch_docs: int = 2048, batch_bytes: int = 2_000_000):
        super().__init__(params, folder)
        self.batch_docs, self.batch_bytes = batch_docs, batch_bytes

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        _remove(self.folder, f"bands/*/{rank:05d}-*.npy")  # an earlier, interrupted attempt of this task
        with _workspace(self.folder) as folder:
            yield from self._signatures(data, rank, folder)

    def _signatures(self, data: DocumentsPipeline, rank: int, folder: str) -> DocumentsPipeline:
        p = self.params
        a, b = p.permutations()
        hasher = ShingleHasher(p.ngram)
        paths = _paths(folder, rank)
        os.makedirs(os.path.dirname(paths["sig"]), exist_ok=True)
        spill_rows = max(256, int(p.memory_mb * 2**20 / 2 / (8 * (p.bands + 1))))
        band_parts: list[np.ndarray] = []
        buffered, runs, n = 0, 0, 0

        def spill():
            """The buffered band hashes as one sorted run per band: (hash, index in this task)."""
            nonlocal band_parts, buffered, runs
            if not band_parts:
                return
            allbands = np.concatenate(band_parts)
            first = n - len(allbands)
            for k in range(p.bands + 1):
                col = allbands[:, k]
                order = np.argsort(col, kind="stable")
                rec = np.empty(len(col), BUCKET_DTYPE)
                rec["hash"], rec["idx"] = col[order], (order + first).astype(np.uint32)
                path = paths["bands"].format(band=k, run=runs)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, rec)
            band_parts, buffered, runs = [], 0, runs + 1

        with atomic_path(paths["sig"]) as sig_tmp, atomic_path(paths["meta"]) as meta_tmp:
            with open(sig_tmp, "wb") as sig_file, pa.OSFile(str(meta_tmp), "wb") as sink, \
                    pa.ipc.new_file(sink, META_SCHEMA) as meta:
                batch: list[Document] = []

                def flush():
                    nonlocal n, buffered
                    if not batch:
                        return
                    with self.track_time("batch"):
                        norms = [normalize(d.text) for d in batch]
                        sig = np.empty((len(batch), p.num_perm), np.uint32)
                        flags = np.array([is_unspaced(d) for d in batch])
                        for unspaced in (False, True):
                            sel = np.flatnonzero(flags == unspaced)
                            if len(sel):
                                flat, counts = hasher([norms[i] for i in sel], unspaced)
                                sig[sel] = minhash_batch(flat, counts, a, b)
                        content = [int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                                  "little") for t in norms]
                        bh = band_hashes(sig, p.bands, p.rows)
                        band_parts.append(np.concatenate([bh, np.array(content, np.uint64)[:, None]], axis=1))
                        sig_file.write(sig.tobytes())
                        meta.write_batch(pa.record_batch([
                            pa.array([d.id for d in batch], pa.string()),
                            pa.array([float(d.metadata.get("quality_score") or 0.0) for d in batch], pa.float64()),
                            pa.array([len(d.text) for d in batch], pa.int64()),
                            pa.array(content, pa.uint64()),
                        ], schema=META_SCHEMA))
                    n += len(batch)
                    buffered += len(batch)
                    batch.clear()
                    if buffered >= spill_rows:
                        spill()

                size = 0
                for doc in data:
                    doc.metadata[KEY] = f"{rank}:{n + len(batch)}"
                    batch.append(doc)
                    size += len(doc.text)
                    yield doc
                    if len(batch) >= min(self.batch_docs, spill_rows) or size >= self.batch_bytes:
                        flush()
                        size = 0
                flush()
                spill()
        self.received(n)
        self.kept(n)
        self.stat_update("band_runs", value=runs)
        logger.info(f"minhash_dedup: task {rank}: {n} signatures, {p.bands} bands of {p.rows}, {runs} sorted runs")


class _Signatures:
    """The signature files of every task, read by row for checking candidate pairs. Rows are read
    with ``pread``, a window of ``WINDOW_ROWS`` rows at a time, never mapped: a mapping would
    count every page the kernel faults in around a row (64 KB at a time) in this process, until
    the process holds every signature file (512 bytes a document) in its resident memory."""

    WINDOW_ROWS = 128  # 64 KB at 128 permutations

    def __init__(self, folder: str, num_perm: int):
        self.files: dict[int, int] = {}  # rank -> file descriptor
        root = os.path.join(folder, "signatures")
        for name in finished_files(root, ".u32"):
            self.files[int(name[:5])] = os.open(os.path.join(root, name), os.O_RDONLY)
        self.num_perm = num_perm

    def __del__(self):
        for fd in getattr(self, "files", {}).values():
            os.close(fd)

    def gather(self, ranks: np.ndarray, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(ranks), self.num_perm), np.uint32)
        window, row_bytes = self.WINDOW_ROWS, 4 * self.num_perm
        for r in np.unique(ranks):
            sel = np.flatnonzero(ranks == r)
            sel = sel[np.argsort(idx[sel], kind="stable")]
            rows = idx[sel].astype(np.int64)
            cuts = np.flatnonzero(np.diff(rows // window)) + 1
            for part, part_rows in zip(np.split(sel, cuts), np.split(rows, cuts)):
                first = part_rows[0] // window * window
                block = np.frombuffer(os.pread(self.files[int(r)], window * row_bytes, int(first) * row_bytes), np.uint32)
                out[part] = block.reshape(-1, self.num_perm)[part_rows - first]
        return out

    def similarity(self, ra, ia, rb, ib, chunk: int = 8192) -> np.ndarray:
        """Estimated Jaccard of each pair, ``chunk`` pairs at a time (about 1.2 KB a pair: 8 MB
        at the default, whatever the corpus)."""
        out = np.empty(len(ra), np.float32)
        for s in range(0, len(ra), chunk):
            e = s + chunk
            equal = self.gather(ra[s:e], ia[s:e]) == self.gather(rb[s:e], ib[s:e])
            out[s:e] = np.count_nonzero(equal, axis=1) / np.float32(self.num_perm)
        return out


class MinhashPairs(_Stage):
    name = "🫂 minhash_dedup: pairs"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        bands = range(rank, self.params.bands + 1, world_size)
        for band in bands:  # an earlier attempt's ranges of these bands
            _remove(self.folder, f"pairs/{band:03d}-*.npy")
        with _workspace(self.folder, ("signatures/*.u32", *(f"bands/{band:03d}/*.npy" for band in bands))) as folder:
            self._band_pairs(folder, bands)
        return iter(())

    def _band_pairs(self, folder: str, bands: range) -> None:
        p = self.params
        sigs = _Signatures(folder, p.num_perm)
        budget_rows = max(256, int(p.memory_mb * 2**20 / MERGE_BYTES_PER_ROW))
        out = os.path.join(folder, "pairs")
        os.makedirs(out, exist_ok=True)
        for band in bands:
            with self.track_time("band"):
                root = os.path.join(folder, "bands", f"{band:03d}")
                names = finished_files(root, ".npy") if os.path.isdir(root) else []
                runs = [np.load(os.path.join(root, name), mmap_mode="r") for name in names]
                owners = [int(name[:5]) for name in names]
                total = sum(len(r) for r in runs)
                if not total:
                    continue
                bounds = self._range_bounds(runs, -(-total // budget_rows))
                starts = [0] * len(runs)
                for part in range(len(bounds) + 1):
                    ends = [len(r) if part == len(bounds) else int(np.searchsorted(r["hash"], bounds[part], side="left"))
                            for r in runs]
                    pairs = self._pairs(np.concatenate([r[a:e] for r, a, e in zip(runs, starts, ends)]),
                                        np.concatenate([np.full(e - a, o, np.uint32) for o, a, e in zip(owners, starts, ends)]),
                                        sigs, exact=band == p.bands)
                    starts = ends
                    self.stat_update("pairs", value=len(pairs))
                    with atomic_path(os.path.join(out, f"{band:03d}-{part:04d}.npy")) as tmp:
                        with open(tmp, "wb") as f:
                            np.save(f, pairs)
                self.stat_update("merge_ranges", value=len(bounds) + 1)

    @staticmethod
    def _range_bounds(runs: list[np.ndarray], parts: int) -> np.ndarray:
        """Hash values that cut the band into ``parts`` ranges of about equal size: quantiles of
        a sample of every sorted run. Equal hashes always fall in one range."""
        if parts <= 1:
            return np.zeros(0, np.uint64)
        step = max(1, sum(len(r) for r in runs) // (parts * 256))
        sample = np.sort(np.concatenate([np.asarray(r["hash"][::step]) for r in runs]))
        return np.unique(sample[(np.arange(1, parts) * len(sample)) // parts])

    def _pairs(self, merged: np.ndarray, owner: np.ndarray, sigs: "_Signatures", exact: bool) -> np.ndarray:
        """Verified pairs among the documents of one hash range that share a hash: each with the
        first of its group (a star), kept when their estimated Jaccard reaches the threshold
        (every pair, in the exact-duplicate band)."""
        order = np.argsort(merged["hash"], kind="stable")  # timsort: merges the sorted runs
        h, r, i = merged["hash"][order], owner[order], merged["idx"][order]
        same = np.flatnonzero(h[1:] == h[:-1]) + 1  # positions equal to their predecessor
        if len(same) == 0:
            return np.zeros(0, PAIR_DTYPE)
        starts = np.flatnonzero(np.concatenate([[True], h[1:] != h[:-1]]))
        first = starts[np.searchsorted(starts, same, side="right") - 1]
        sim = sigs.similarity(r[first], i[first], r[same], i[same])
        keep = np.ones(len(same), bool) if exact else sim >= self.params.threshold
        pairs = np.zeros(int(keep.sum()), PAIR_DTYPE)
        pairs["ra"], pairs["ia"] = r[first][keep], i[first][keep]
        pairs["rb"], pairs["ib"] = r[same][keep], i[same][keep]
        pairs["sim"] = sim[keep]
        self.stat_update("candidates", value=len(same))
        self.stat_update("rejected_by_check", value=int((~keep).sum()))
        return pairs


class MinhashClusters(_Stage):
    name = "🫂 minhash_dedup: clusters"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.track_time(), _workspace(self.folder, ("pairs/*.npy", "signatures/*")) as folder:
            self._clusters(folder)
        return iter(())

    def _clusters(self, folder: str) -> None:
        pair_dir = os.path.join(folder, "pairs")
        nodes, label = np.zeros(0, np.int64), np.zeros(0, np.int64)
        for name in finished_files(pair_dir, ".npy") if os.path.isdir(pair_dir) else []:
            # one file of pairs at a time, joined to the clusters so far, each kept as a star
            # (every node to one node of its cluster): memory follows the documents in
            # clusters, not the pairs (each band finds most of them again)
            pairs = np.load(os.path.join(pair_dir, name))
            hub = np.empty(label.max() + 1 if len(label) else 0, np.int64)
            hub[label] = nodes
            nodes, label = connected_components(
                np.concatenate([nodes, (pairs["ra"].astype(np.int64) << 32) | pairs["ia"]]),
                np.concatenate([hub[label], (pairs["rb"].astype(np.int64) << 32) | pairs["ib"]]))
            del pairs, hub
        self._write(folder, nodes, label)

    def _members(self, folder: str, nodes: np.ndarray) -> dict[str, np.ndarray]:
        """id, quality_score, length and content hash of each node (rank << 32 | index), from the
        tasks' metadata tables: only the rows of documents in a cluster are read into memory."""
        ranks, idx = (nodes >> 32).astype(np.uint32), (nodes & 0xFFFFFFFF).astype(np.uint32)
        cols = {"id": np.empty(len(nodes), object), "quality_score": np.empty(len(nodes), np.float64),
                "length": np.empty(len(nodes), np.int64), "content_hash": np.empty(len(nodes), np.uint64)}
        for r in np.unique(ranks):
            sel = np.flatnonzero(ranks == r)
            table = pa.ipc.open_file(pa.memory_map(_paths(folder, int(r))["meta"])).read_all().take(pa.array(idx[sel]))
            for name, col in cols.items():
                col[sel] = table.column(name).to_pylist() if name == "id" else table.column(name).to_numpy()
        return cols

    def _write(self, folder: str, nodes: np.ndarray, label: np.ndarray) -> None:
        m = self._members(folder, nodes)
        _, id_rank = np.unique(m["id"], return_inverse=True)  # the order of the ids as strings
        # per cluster, the kept document first: highest quality, then longest, then smallest id
        order = np.lexsort((id_rank, -m["length"], -m["quality_score"], label))
        first = np.ones(len(order), bool)
        first[1:] = label[order][1:] != label[order][:-1]
        keep_of = np.empty(label.max() + 1 if len(label) else 0, np.int64)
        keep_of[label[order][first]] = order[first]  # node index of each cluster's kept document
        keep = keep_of[label]  # ... of every node's cluster
        removed = keep != np.arange(len(nodes))
        sims = np.ones(len(nodes), np.float32)
        sigs = _Signatures(folder, self.params.num_perm)
        kn, on = nodes[keep[removed]], nodes[removed]
        sims[removed] = np.round(sigs.similarity((kn >> 32).astype(np.uint32), (kn & 0xFFFFFFFF).astype(np.uint32),
                                                 (on >> 32).astype(np.uint32), (on & 0xFFFFFFFF).astype(np.uint32)), 4)
        exact = m["content_hash"] == m["content_hash"][keep]
        reason = np.where(~removed, "", np.where(exact, "exact_duplicate", "near_duplicate"))
        cluster = m["id"][keep]
        ranks, idx = (nodes >> 32).astype(np.uint32), (nodes & 0xFFFFFFFF).astype(np.uint32)
        for r in np.unique(ranks):
            sel = np.flatnonzero(ranks == r)
            sel = sel[np.argsort(idx[sel], kind="stable")]
            table = pa.table({"idx": pa.array(idx[sel], pa.uint32()), "cluster": pa.array(cluster[sel].tolist(), pa.string()),
                              "removed": pa.array(removed[sel]), "reason": pa.array(reason[sel].tolist(), pa.string()),
                              "similarity": pa.array(sims[sel], pa.float32())})
            write_arrow(os.path.join(folder, "decisions", f"{r:05d}.arrow"), table)
        # clusters.jsonl, by kept id; in each cluster the removed documents by id
        by_cluster = np.lexsort((id_rank, removed, keep, id_rank[keep]))
        ends = np.flatnonzero(np.diff(keep[by_cluster])) + 1
        with atomic_path(os.path.join(folder, "clusters.jsonl")) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                for group in np.split(by_cluster, ends) if len(by_cluster) else []:
                    kept, others = group[0], group[1:]
                    entry = {"cluster": m["id"][kept], "kept": m["id"][kept], "size": len(group),
                             "removed": [{"id": m["id"][k], "reason": str(reason[k]), "similarity": round(float(sims[k]), 4)}
                                         for k in others]}
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        clusters, removed_n = int(first.sum()), int(removed.sum())
        self.stat_update("clusters", value=clusters)
        self.stat_update("removed", value=removed_n)
        logger.info(f"minhash_dedup: {clusters} clusters, {removed_n} documents to remove")


class MinhashFilter(Filter):
    name = "🫂 minhash_dedup: filter"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder
        self._rank, self._decisions = None, (np.zeros(0, np.uint32), None)

    def _for_rank(self, r: int) -> tuple[np.ndarray, pa.Table | None]:
        """The sorted indices of this task's documents that are in a cluster, and their decisions
        (an Arrow table, looked up by position: no Python object per document); one task's at a time."""
        if r != self._rank:
            path = run_path(self.folder) / "decisions" / f"{r:05d}.arrow"
            if not path.exists():
                table = None
            elif is_remote(path):
                with path.open("rb") as f:
                    table = pa.ipc.open_file(pa.BufferReader(f.read())).read_all()
            else:
                table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
            self._rank = r
            self._decisions = (table.column("idx").to_numpy(), table) if table is not None else (np.zeros(0, np.uint32), None)
        return self._decisions

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        key = doc.metadata.pop(KEY, None)
        if key is None:
            raise ValueError(f"document {doc.id!r} has no {KEY}: it did not pass minhash_dedup's signatures stage")
        r, i = map(int, key.split(":"))
        idx, table = self._for_rank(r)
        pos = int(np.searchsorted(idx, i))
        if pos == len(idx) or idx[pos] != i:
            return True
        doc.metadata["dedup_cluster"] = table.column("cluster")[pos].as_py()
        if table.column("removed")[pos].as_py():
            return False, table.column("reason")[pos].as_py()
        return True
