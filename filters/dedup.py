"""Near-duplicate removal with MinHash (datasketch), in three stages.

``minhash_dedup`` needs to see every document before it can decide which to drop, so the
runner splits the pipeline around it (a *barrier* step):

1. ``signatures`` (every task, at the end of the steps before it): normalises the text,
   shingles it (word 5-grams; character 5-grams for Chinese, Japanese, Thai...), computes a
   MinHash signature and a content hash, and writes them to ``dedup/signatures/<rank>.npz``.
   The documents themselves are written to the run's ``work/`` folder.
2. ``clusters`` (one task): exact duplicates by content hash first, then candidate pairs from
   datasketch's ``MinHashLSH`` (bands chosen from the Jaccard ``threshold``), each candidate pair
   checked on its estimated Jaccard, clusters by union-find. One document is kept per cluster:
   the highest ``quality_score``, then the longest text, then the smallest id. Writes
   ``dedup/clusters.jsonl`` (cluster, kept id, removed ids with estimated similarity) and
   ``dedup/removed.json``.
3. ``filter`` (every task, first of the steps after it): drops the removed documents (reasons
   ``exact_duplicate`` and ``near_duplicate``) and stores ``metadata.dedup_cluster`` on the
   members of a cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata

import numpy as np
import regex
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from loguru import logger

from corpus.io import atomic_path
from corpus.registry import register
from filters.heuristics import is_unspaced

_PUNCT = regex.compile(r"[\p{P}\p{S}]+")
_DIGITS = regex.compile(r"\d")
_UNSPACED_CHAR = regex.compile(r"\p{Han}|\p{Hiragana}|\p{Katakana}|\p{Thai}|\p{Lao}|\p{Khmer}|\p{Myanmar}")


def normalize(text: str) -> str:
    """Case, Unicode form, punctuation, digits and whitespace do not make documents different."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DIGITS.sub("0", _PUNCT.sub(" ", text))
    return " ".join(text.split())


def shingles(text: str, n: int, unspaced: bool) -> set[bytes]:
    norm = normalize(text)
    if unspaced:  # characters, not words: drop the spaces between CJK characters
        units = [c for c in norm if not c.isspace()]
        sep = ""
    else:
        units = norm.split()
        sep = " "
    if len(units) < n:
        return {sep.join(units).encode()} if units else set()
    return {sep.join(units[i : i + n]).encode() for i in range(len(units) - n + 1)}


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@register("minhash_dedup")
class MinhashDedup(PipelineStep):
    """Removes exact and near-duplicate documents (estimated Jaccard of shingles >= ``threshold``).
    A barrier: the runner computes signatures, clusters all of them, then filters."""

    name = "🫂 minhash_dedup"
    type = "🫂 - DEDUP"
    barrier = True

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5, seed: int = 1):
        super().__init__()
        if not 0 < threshold < 1:
            raise ValueError("threshold must be between 0 and 1")
        self.threshold, self.num_perm, self.ngram, self.seed = threshold, num_perm, ngram, seed
        self.folder: str | None = None
        self.scheme = self._template().scheme

    def _template(self):
        from datasketch import MinHash

        return MinHash(num_perm=self.num_perm, seed=self.seed)

    def stages(self, folder: str) -> tuple[PipelineStep, PipelineStep, PipelineStep]:
        """(signatures, clusters, filter) steps that share ``folder``."""
        self.folder = folder
        return MinhashSignatures(self), MinhashClusters(self), MinhashFilter(self)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        raise RuntimeError("minhash_dedup is a barrier step: the pipeline runner splits it into stages")


class MinhashSignatures(PipelineStep):
    name = "🫂 minhash_dedup: signatures"
    type = "🫂 - DEDUP"

    def __init__(self, cfg: MinhashDedup):
        super().__init__()
        self.cfg = cfg

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        ids, sigs, hashes, scores, lengths = [], [], [], [], []
        template = self.cfg._template()
        for doc in data:
            self.stat_update("total")
            with self.track_time():
                m = template.copy()
                sh = shingles(doc.text, self.cfg.ngram, is_unspaced(doc))
                if sh:
                    m.update_batch(list(sh))
                ids.append(doc.id)
                sigs.append(m.hashvalues)
                hashes.append(hashlib.blake2b(normalize(doc.text).encode(), digest_size=16).digest())
                scores.append(float(doc.metadata.get("quality_score", 0.0) or 0.0))
                lengths.append(len(doc.text))
            self.stat_update("forwarded")
            yield doc
        path = os.path.join(self.cfg.folder, "signatures", f"{rank:05d}.npz")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    ids=np.array(ids, dtype=object),
                    sigs=np.array(sigs, dtype=np.uint64).reshape(len(ids), self.cfg.num_perm),
                    hashes=np.array(hashes, dtype="S16"),
                    scores=np.array(scores, dtype=np.float64),
                    lengths=np.array(lengths, dtype=np.int64),
                )


class MinhashClusters(PipelineStep):
    name = "🫂 minhash_dedup: clusters"
    type = "🫂 - DEDUP"

    def __init__(self, cfg: MinhashDedup):
        super().__init__()
        self.cfg = cfg

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from datasketch import LeanMinHash, MinHashLSH

        folder = os.path.join(self.cfg.folder, "signatures")
        ids, sigs, hashes, scores, lengths = [], [], [], [], []
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".npz"):
                continue
            with np.load(os.path.join(folder, name), allow_pickle=True) as z:
                ids.extend(z["ids"].tolist())
                sigs.append(z["sigs"])
                hashes.extend(z["hashes"].tolist())
                scores.extend(z["scores"].tolist())
                lengths.extend(z["lengths"].tolist())
        n = len(ids)
        sig = np.concatenate(sigs) if sigs else np.zeros((0, self.cfg.num_perm), np.uint64)
        uf = UnionFind(n)
        with self.track_time():
            first_of_hash: dict[bytes, int] = {}
            exact = set()
            for i, h in enumerate(hashes):
                if h in first_of_hash:
                    uf.union(first_of_hash[h], i)
                    exact.add(i)
                else:
                    first_of_hash[h] = i
            lsh = MinHashLSH(threshold=self.cfg.threshold, num_perm=self.cfg.num_perm)
            reps = sorted(first_of_hash.values())
            for i in reps:
                m = LeanMinHash(seed=self.cfg.seed, hashvalues=sig[i], scheme=self.cfg.scheme)
                for j in lsh.query(m):
                    if (sig[i] == sig[j]).mean() >= self.cfg.threshold:  # estimated Jaccard check
                        uf.union(i, j)
                lsh.insert(i, m)
        clusters: dict[int, list[int]] = {}
        for i in range(n):
            clusters.setdefault(uf.find(i), []).append(i)
        removed, report = {}, []
        for members in clusters.values():
            if len(members) < 2:
                continue
            keep = min(members, key=lambda i: (-scores[i], -lengths[i], ids[i]))
            cluster_id = ids[keep]
            entry = {"cluster": cluster_id, "kept": ids[keep], "removed": []}
            for i in sorted(members, key=lambda i: ids[i]):
                if i == keep:
                    continue
                similarity = float((sig[i] == sig[keep]).mean())
                reason = "exact_duplicate" if hashes[i] == hashes[keep] else "near_duplicate"
                removed[ids[i]] = {"cluster": cluster_id, "reason": reason, "similarity": round(similarity, 4)}
                entry["removed"].append({"id": ids[i], "reason": reason, "similarity": round(similarity, 4)})
            report.append(entry)
        self.stat_update("signatures", value=n)
        self.stat_update("clusters", value=len(report))
        self.stat_update("removed", value=len(removed))
        members_of = {ids[i]: ids[min(m, key=lambda i: (-scores[i], -lengths[i], ids[i]))]
                      for m in clusters.values() if len(m) > 1 for i in m}
        with atomic_path(os.path.join(self.cfg.folder, "clusters.jsonl")) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                for entry in sorted(report, key=lambda e: e["cluster"]):
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        with atomic_path(os.path.join(self.cfg.folder, "removed.json")) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"removed": removed, "cluster_of": members_of}, f, ensure_ascii=False)
        logger.info(f"minhash_dedup: {n} documents, {len(report)} clusters, {len(removed)} removed")
        return iter(())


class MinhashFilter(BaseFilter):
    name = "🫂 minhash_dedup: filter"

    def __init__(self, cfg: MinhashDedup):
        super().__init__()
        self.cfg = cfg
        self._removed = None

    def _load(self):
        with open(os.path.join(self.cfg.folder, "removed.json"), encoding="utf-8") as f:
            data = json.load(f)
        self._removed, self._cluster_of = data["removed"], data["cluster_of"]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self._removed is None:
            self._load()
        if doc.id in self._cluster_of:
            doc.metadata["dedup_cluster"] = self._cluster_of[doc.id]
        info = self._removed.get(doc.id)
        if info is not None:
            return False, info["reason"]
        return True
