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
   small table of (id, quality_score, length).
2. **pairs** (one task per group of bands). For each band, the tasks' sorted files are merged
   (a stable sort of sorted runs); documents sharing a band hash are candidates, and each
   candidate pair is checked on its estimated Jaccard (the share of equal signature values)
   before it counts. Bands are laid out by datasketch's ``_optimal_param`` for
   ``band_threshold`` (default ``threshold - 0.1``): bands tuned at the threshold itself miss
   many pairs just above it, and the check keeps loose bands from chaining unrelated documents.
3. **clusters** (one task). Verified pairs are joined by union-find; memory grows with the
   number of duplicate pairs, not with the number of documents. One document is kept per
   cluster: the highest ``quality_score``, then the longest text, then the smallest id. Writes
   ``clusters.jsonl`` (cluster, kept id, removed ids with reason and estimated similarity).
4. **filter** (every task, first of the steps after it). Drops the removed documents, with
   reason ``exact_duplicate`` (same normalised text as the kept one) or ``near_duplicate``, and
   stores ``metadata.dedup_cluster`` on every member of a cluster.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from loguru import logger

from corpus.core.funnel import Filter, Funnel
from corpus.core.io import atomic_path, finished_files, write_arrow
from corpus.core.registry import register
from corpus.dedup.minhash import MinhashParams, ShingleHasher, UnionFind, band_hashes, minhash_batch, normalize
from corpus.filters.heuristics import is_unspaced

KEY = "dedup_key"  # metadata set by the signatures stage, read (and removed) by the filter



@register("minhash_dedup")
class MinhashDedup(PipelineStep):
    """Removes exact and near-duplicate documents (estimated Jaccard of shingles >= ``threshold``),
    keeping one per cluster (highest quality_score, then longest, then smallest id). A barrier:
    the runner splits it into signatures, pairs, clusters and filter stages."""

    name = "🫂 minhash_dedup"
    type = "🫂 - DEDUP"
    barrier = True

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, seed: int = 1,
                 band_threshold: float | None = None):
        super().__init__()
        from datasketch.lsh import _optimal_param

        if not 0 < threshold < 1:
            raise ValueError("threshold must be between 0 and 1")
        if num_perm < 16 or ngram < 1:
            raise ValueError("num_perm must be at least 16 and ngram at least 1")
        band_threshold = band_threshold if band_threshold is not None else max(0.05, threshold - 0.1)
        bands, rows = _optimal_param(band_threshold, num_perm, 0.5, 0.5)
        self.params = MinhashParams(threshold, num_perm, ngram, seed, bands, rows)
        self.folder: str | None = None

    def stages(self, folder: str):
        """(signatures step, [(step, tasks) of the middle jobs], filter step), sharing ``folder``."""
        self.folder = folder
        return MinhashSignatures(self.params, folder), [(MinhashPairs(self.params, folder), None),
                                                        (MinhashClusters(self.params, folder), 1)], MinhashFilter(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        raise RuntimeError("minhash_dedup is a barrier step: the pipeline runner splits it into stages")


def _paths(folder: str, rank: int) -> dict[str, str]:
    return {
        "sig": os.path.join(folder, "signatures", f"{rank:05d}.u32"),
        "meta": os.path.join(folder, "signatures", f"{rank:05d}.arrow"),
        "bands": os.path.join(folder, "bands", "{band:03d}", f"{rank:05d}.npy"),
    }


META_SCHEMA = pa.schema([("id", pa.string()), ("quality_score", pa.float64()), ("length", pa.int64()),
                         ("content_hash", pa.uint64())])
BUCKET_DTYPE = np.dtype([("hash", "<u8"), ("idx", "<u4")])
PAIR_DTYPE = np.dtype([("ra", "<u4"), ("ia", "<u4"), ("rb", "<u4"), ("ib", "<u4"), ("sim", "<f4")])


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
        p = self.params
        a, b = p.permutations()
        hasher = ShingleHasher(p.ngram)
        paths = _paths(self.folder, rank)
        os.makedirs(os.path.dirname(paths["sig"]), exist_ok=True)
        band_parts: list[np.ndarray] = []
        n = 0
        with atomic_path(paths["sig"]) as sig_tmp, atomic_path(paths["meta"]) as meta_tmp:
            with open(sig_tmp, "wb") as sig_file, pa.OSFile(str(meta_tmp), "wb") as sink, \
                    pa.ipc.new_file(sink, META_SCHEMA) as meta:
                batch: list[Document] = []

                def flush():
                    nonlocal n
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
                    batch.clear()

                size = 0
                for doc in data:
                    doc.metadata[KEY] = f"{rank}:{n + len(batch)}"
                    batch.append(doc)
                    size += len(doc.text)
                    yield doc
                    if len(batch) >= self.batch_docs or size >= self.batch_bytes:
                        flush()
                        size = 0
                flush()
        self.received(n)
        self.kept(n)
        # one sorted (hash, index) file per band: the pairs stage merges these runs
        allbands = np.concatenate(band_parts) if band_parts else np.zeros((0, p.bands + 1), np.uint64)
        for k in range(p.bands + 1):
            path = paths["bands"].format(band=k)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            col = allbands[:, k]
            order = np.argsort(col, kind="stable")
            rec = np.empty(len(col), BUCKET_DTYPE)
            rec["hash"], rec["idx"] = col[order], order.astype(np.uint32)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, rec)
        logger.info(f"minhash_dedup: task {rank}: {n} signatures, {p.bands} bands of {p.rows}")


class _Signatures:
    """Memory-mapped signature files of every task, for checking candidate pairs."""

    def __init__(self, folder: str, num_perm: int):
        self.maps: dict[int, np.ndarray] = {}
        root = os.path.join(folder, "signatures")
        for name in finished_files(root, ".u32"):
            path = os.path.join(root, name)
            rows = os.path.getsize(path) // (4 * num_perm)
            self.maps[int(name[:5])] = np.memmap(path, dtype=np.uint32, mode="r", shape=(rows, num_perm)) \
                if rows else np.zeros((0, num_perm), np.uint32)
        self.num_perm = num_perm

    def gather(self, ranks: np.ndarray, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(ranks), self.num_perm), np.uint32)
        for r in np.unique(ranks):
            mask = ranks == r
            out[mask] = self.maps[int(r)][idx[mask]]
        return out

    def similarity(self, ra, ia, rb, ib) -> np.ndarray:
        return (self.gather(ra, ia) == self.gather(rb, ib)).mean(axis=1).astype(np.float32)


class MinhashPairs(_Stage):
    name = "🫂 minhash_dedup: pairs"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        p = self.params
        sigs = _Signatures(self.folder, p.num_perm)
        exact_band = p.bands
        for band in range(rank, p.bands + 1, world_size):
            with self.track_time("band"):
                root = os.path.join(self.folder, "bands", f"{band:03d}")
                runs, owners = [], []
                for name in finished_files(root, ".npy"):
                    arr = np.load(os.path.join(root, name), mmap_mode="r")
                    runs.append(arr)
                    owners.append(np.full(len(arr), int(name[:5]), np.uint32))
                if not runs:
                    continue
                merged = np.concatenate(runs)
                owner = np.concatenate(owners)
                order = np.argsort(merged["hash"], kind="stable")  # timsort: merges the sorted runs
                h, r, i = merged["hash"][order], owner[order], merged["idx"][order]
                same = np.flatnonzero(h[1:] == h[:-1]) + 1  # positions equal to their predecessor
                if len(same) == 0:
                    pairs = np.zeros(0, PAIR_DTYPE)
                else:
                    # group start for each position: star pairs (first member, other member)
                    starts = np.flatnonzero(np.concatenate([[True], h[1:] != h[:-1]]))
                    first = starts[np.searchsorted(starts, same, side="right") - 1]
                    sim = sigs.similarity(r[first], i[first], r[same], i[same])
                    keep = np.ones(len(same), bool) if band == exact_band else sim >= p.threshold
                    pairs = np.zeros(int(keep.sum()), PAIR_DTYPE)
                    pairs["ra"], pairs["ia"] = r[first][keep], i[first][keep]
                    pairs["rb"], pairs["ib"] = r[same][keep], i[same][keep]
                    pairs["sim"] = sim[keep]
                    self.stat_update("candidates", value=len(same))
                    self.stat_update("rejected_by_check", value=int((~keep).sum()))
                self.stat_update("pairs", value=len(pairs))
                path = os.path.join(self.folder, "pairs", f"{band:03d}.npy")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, pairs)
        return iter(())



class MinhashClusters(_Stage):
    name = "🫂 minhash_dedup: clusters"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        uf = UnionFind()
        with self.track_time():
            pair_dir = os.path.join(self.folder, "pairs")
            for name in finished_files(pair_dir, ".npy"):
                pairs = np.load(os.path.join(pair_dir, name))
                a = (pairs["ra"].astype(np.int64) << 32) | pairs["ia"]
                b = (pairs["rb"].astype(np.int64) << 32) | pairs["ib"]
                for x, y in zip(a.tolist(), b.tolist()):
                    uf.union(x, y)
            clusters: dict[int, list[int]] = {}
            for node in list(uf.parent):
                clusters.setdefault(uf.find(node), []).append(node)
            for root, members in clusters.items():
                if root not in members:
                    members.append(root)
            self._write(clusters)
        return iter(())

    def _write(self, clusters: dict[int, list[int]]) -> None:
        members = sorted(k for ms in clusters.values() for k in ms)
        ranks = np.array([k >> 32 for k in members], np.uint32)
        idx = np.array([k & 0xFFFFFFFF for k in members], np.uint32)
        meta: dict[int, dict] = {}
        for r in np.unique(ranks):
            table = pa.ipc.open_file(pa.memory_map(_paths(self.folder, int(r))["meta"])).read_all()
            sel = idx[ranks == r]
            rows = table.take(pa.array(sel)).to_pylist()
            for i, row in zip(sel.tolist(), rows):
                meta[(int(r) << 32) | i] = row
        sigs = _Signatures(self.folder, self.params.num_perm)
        report, per_rank = [], {}
        for ms in clusters.values():
            keep = min(ms, key=lambda k: (-meta[k]["quality_score"], -meta[k]["length"], meta[k]["id"]))
            others = sorted((k for k in ms if k != keep), key=lambda k: meta[k]["id"])
            ra = np.full(len(others), keep >> 32, np.uint32)
            ia = np.full(len(others), keep & 0xFFFFFFFF, np.uint32)
            sims = sigs.similarity(ra, ia, np.array([k >> 32 for k in others], np.uint32),
                                   np.array([k & 0xFFFFFFFF for k in others], np.uint32))
            cluster = meta[keep]["id"]
            entry = {"cluster": cluster, "kept": cluster, "size": len(ms), "removed": []}
            per_rank.setdefault(keep >> 32, []).append((keep & 0xFFFFFFFF, cluster, False, "", 1.0))
            for k, sim in zip(others, sims.tolist()):
                reason = "exact_duplicate" if meta[k]["content_hash"] == meta[keep]["content_hash"] else "near_duplicate"
                entry["removed"].append({"id": meta[k]["id"], "reason": reason, "similarity": round(sim, 4)})
                per_rank.setdefault(k >> 32, []).append((k & 0xFFFFFFFF, cluster, True, reason, round(sim, 4)))
            report.append(entry)
        for r, rows in per_rank.items():
            rows.sort()
            table = pa.table({"idx": pa.array([x[0] for x in rows], pa.uint32()), "cluster": [x[1] for x in rows],
                              "removed": [x[2] for x in rows], "reason": [x[3] for x in rows],
                              "similarity": pa.array([x[4] for x in rows], pa.float32())})
            path = os.path.join(self.folder, "decisions", f"{r:05d}.arrow")
            write_arrow(path, table)
        with atomic_path(os.path.join(self.folder, "clusters.jsonl")) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                for entry in sorted(report, key=lambda e: e["cluster"]):
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        removed = sum(len(e["removed"]) for e in report)
        self.stat_update("clusters", value=len(report))
        self.stat_update("removed", value=removed)
        logger.info(f"minhash_dedup: {len(report)} clusters, {removed} documents to remove")


class MinhashFilter(Filter):
    name = "🫂 minhash_dedup: filter"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder
        self._decisions: dict[int, dict[int, tuple]] = {}

    def _for_rank(self, r: int) -> dict[int, tuple]:
        if r not in self._decisions:
            path = os.path.join(self.folder, "decisions", f"{r:05d}.arrow")
            if os.path.exists(path):
                t = pa.ipc.open_file(pa.memory_map(path)).read_all().to_pydict()
                self._decisions[r] = {i: (c, rm, why) for i, c, rm, why in
                                      zip(t["idx"], t["cluster"], t["removed"], t["reason"])}
            else:
                self._decisions[r] = {}
        return self._decisions[r]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        key = doc.metadata.pop(KEY, None)
        if key is None:
            raise ValueError(f"document {doc.id!r} has no {KEY}: it did not pass minhash_dedup's signatures stage")
        r, i = map(int, key.split(":"))
        decision = self._for_rank(r).get(i)
        if decision is None:
            return True
        cluster, removed, reason = decision
        doc.metadata["dedup_cluster"] = cluster
        return (False, reason) if removed else True
