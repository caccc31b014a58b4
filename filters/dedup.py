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
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import regex
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from loguru import logger

from corpus.io import atomic_path, write_arrow
from corpus.registry import register
from filters.heuristics import is_unspaced

_PUNCT = regex.compile(r"[\p{P}\p{S}]+")
_DIGITS = regex.compile(r"\d")
_ASCII_TABLE = str.maketrans({**{c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}, **{d: "0" for d in "0123456789"}})
KEY = "dedup_key"  # metadata set by the signatures stage, read (and removed) by the filter
_M64 = (1 << 64) - 1
_BASE = 0x100000001B3  # odd: invertible mod 2^64
_COMBINE = 0x9E3779B97F4A7C15  # odd multiplier that combines unit hashes into a shingle hash


def normalize(text: str) -> str:
    """Case, Unicode form, punctuation, digits and whitespace do not make documents different."""
    if text.isascii():  # the common case, without regexes
        return " ".join(text.lower().translate(_ASCII_TABLE).split())
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DIGITS.sub("0", _PUNCT.sub(" ", text))
    return " ".join(text.split())


def units(text: str, unspaced: bool) -> list[str]:
    """Words, or characters for scripts written without spaces (spaces themselves dropped)."""
    norm = normalize(text)
    return [c for c in norm if c != " "] if unspaced else norm.split()


# ------------------------------------------------------------------ hashing
#
# A unit (word or character) hashes to fmix64 of its polynomial hash: for the UTF-8 bytes of a
# word, sum((byte + 1) * BASE^j) mod 2^64, j counted from the word's start; for a character, its
# code point. A shingle of n
# units hashes to Horner's rule over their unit hashes with COMBINE, folded to 32 bits. The plain
# Python functions below define it; ``shingle_hashes`` computes the same with numpy for every
# shingle of a document at once (a test checks they agree, and that the signatures built on them
# equal datasketch's own MinHash with ``hashfunc=shingle_hash``).


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


def unit_hash(unit: str, unspaced: bool) -> int:
    if unspaced:
        return _fmix64_int(ord(unit))
    h = 0
    for byte in reversed(unit.encode("utf-8", "surrogatepass")):
        h = (h * _BASE + byte + 1) & _M64
    return _fmix64_int(h)


def shingle_hash(shingle: tuple[str, ...], unspaced: bool = False) -> int:
    """The 32-bit hash of one shingle (a tuple of units): usable as datasketch's ``hashfunc``."""
    c = 0
    for u in shingle:
        c = (c * _COMBINE + unit_hash(u, unspaced)) & _M64
    return (c ^ (c >> 32)) & 0xFFFFFFFF


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _geometric(base: int, n: int) -> np.ndarray:
    """base^j mod 2^64 for j < n, by doubling: log2(n) vector products instead of a sequential cumprod."""
    out = np.empty(n, np.uint64)
    out[0], k = 1, 1
    with np.errstate(over="ignore"):
        while k < n:
            step = min(k, n - k)
            out[k : k + step] = out[:step] * np.uint64(pow(base, k, 1 << 64))
            k += step
    return out


class ShingleHasher:
    """Vectorised shingle hashing over a whole batch of documents at once."""

    def __init__(self, ngram: int):
        self.ngram = ngram
        self._pow = self._ipow = np.ones(1, np.uint64)

    def _powers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """BASE^j and BASE^-j mod 2^64 for j < n, kept between batches (grown by doubling)."""
        if len(self._pow) < n:
            m = max(n + n // 4, 2 * len(self._pow), 1024)
            self._pow, self._ipow = _geometric(_BASE, m), _geometric(pow(_BASE, -1, 1 << 64), m)
        return self._pow, self._ipow

    def unit_hashes(self, norms: list[str], unspaced: bool) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of every unit of the normalised texts, concatenated, and units per text."""
        if unspaced:
            counts = np.array([len(t) - t.count(" ") for t in norms], np.int64)
            joined = "".join(t.replace(" ", "") for t in norms)
            cps = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.uint64)
            with np.errstate(over="ignore"):
                return _fmix64(cps), counts
        counts = np.array([t.count(" ") + 1 if t else 0 for t in norms], np.int64)
        joined = " ".join(t for t in norms if t)
        if not joined:
            return np.zeros(0, np.uint64), counts
        with np.errstate(over="ignore"):
            b = np.frombuffer(joined.encode("utf-8", "surrogatepass"), np.uint8).astype(np.uint64) + np.uint64(1)
            spaces = np.flatnonzero(b == np.uint64(33))  # a space byte (32) + 1
            starts = np.concatenate([np.zeros(1, np.int64), spaces + 1])
            pw, ipw = self._powers(len(b))
            terms = b * pw[: len(b)]
            terms[spaces] = 0
            # sum over a word of byte * BASE^j, shifted down by BASE^-start: its polynomial hash
            return _fmix64(np.add.reduceat(terms, starts) * ipw[starts]), counts

    def __call__(self, norms: list[str], unspaced: bool) -> tuple[np.ndarray, np.ndarray]:
        """32-bit hashes of every shingle of every text, concatenated in text order (repeats kept:
        they do not change a minimum), and the number of shingles of each text."""
        h, counts = self.unit_hashes(norms, unspaced)
        n = self.ngram
        ustart = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)[:-1]]) if len(counts) else counts
        m = len(h) - n + 1
        with np.errstate(over="ignore"):
            if m > 0:
                c = np.zeros(m, np.uint64)
                for j in range(n):  # Horner's rule, for every shingle of the batch at once
                    c = c * np.uint64(_COMBINE) + h[j : j + m]
                doc_end = np.repeat(ustart + counts, counts)[:m]
                c = c[np.arange(m) + n <= doc_end]  # drop shingles that run into the next text
            else:
                c = np.zeros(0, np.uint64)
            shingles = np.maximum(counts - n + 1, 0)
            short = np.flatnonzero((counts > 0) & (counts < n))
            if len(short):  # texts of fewer units than a shingle: one shingle of all of them
                parts, pos = [], 0
                full = np.concatenate([[0], np.cumsum(shingles)])
                for d in short:
                    x = np.uint64(0)
                    for v in h[ustart[d] : ustart[d] + counts[d]]:
                        x = x * np.uint64(_COMBINE) + v
                    parts += [c[pos : full[d]], np.array([x], np.uint64)]
                    pos = full[d]
                c = np.concatenate(parts + [c[pos:]])
                shingles[short] = 1
            x = (c ^ (c >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
        return x.astype(np.uint32), shingles


@dataclass
class MinhashParams:
    threshold: float
    num_perm: int
    ngram: int
    seed: int
    bands: int
    rows: int

    def permutations(self):
        """datasketch's own permutation parameters for this seed and size."""
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=self.seed, scheme="affine32")
        a, b = m.permutations
        return a.astype(np.uint32), b.astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    from datasketch.minhash import _fmix

    return _fmix(h, 32)


def minhash_batch(flat: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Signatures of many documents at once: (documents, num_perm) uint32, equal to datasketch's
    ``MinHash(scheme="affine32").update_batch`` of each document's shingle hashes. ``flat`` holds
    the shingle hashes of all documents in order, ``counts`` how many belong to each; a document
    without shingles gets the empty sketch. Work goes in chunks of about ``chunk`` shingles,
    whole documents each, so the (num_perm x chunk) products stay in cache."""
    out = np.full((len(counts), len(a)), np.iinfo(np.uint32).max, dtype=np.uint32)
    if not len(counts):
        return out
    hv_all = _fmix32(flat)
    ends = np.cumsum(counts)
    starts = ends - counts
    # document boundaries where a new chunk begins (at least one document per chunk)
    cuts = np.unique(np.searchsorted(ends, np.arange(chunk, int(ends[-1]) + chunk, chunk), side="left") + 1)
    bounds = [0] + [int(c) for c in cuts if 0 < c < len(counts)] + [len(counts)]
    for first, last in zip(bounds[:-1], bounds[1:]):
        sel = np.flatnonzero(counts[first:last]) + first
        if not len(sel):
            continue
        lo, hi = int(starts[first]), int(ends[last - 1])
        with np.errstate(over="ignore"):
            phv = a[:, None] * hv_all[None, lo:hi]  # (num_perm, shingles): rows contiguous for reduceat
            phv += b[:, None]  # uint32 wraparound is the mod 2^32
        out[sel] = np.minimum.reduceat(phv, starts[sel] - lo, axis=1).T
    return out


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64: one hash per band of ``rows`` signature values."""
    mult = np.random.default_rng(0x5EED).integers(1, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out = np.zeros((sig.shape[0], bands), np.uint64)
    with np.errstate(over="ignore"):
        for k in range(bands):
            block = sig[:, k * rows : (k + 1) * rows].astype(np.uint64)
            h = (block * mult[None, :]).sum(axis=1, dtype=np.uint64) + np.uint64(k)
            out[:, k] = h ^ (h >> np.uint64(31))
    return out


# ------------------------------------------------------------------ the step and its stages


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


class _Stage(PipelineStep):
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
        self.stat_update("total", "forwarded", value=n)
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
        for name in sorted(os.listdir(root)):
            if name.endswith(".u32"):
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
                for name in sorted(os.listdir(root)):
                    if name.endswith(".npy"):
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


class UnionFind:
    """Over the documents that appear in a pair only: memory grows with duplicates, not documents."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class MinhashClusters(_Stage):
    name = "🫂 minhash_dedup: clusters"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        uf = UnionFind()
        with self.track_time():
            pair_dir = os.path.join(self.folder, "pairs")
            for name in sorted(os.listdir(pair_dir)):
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


class MinhashFilter(BaseFilter):
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
