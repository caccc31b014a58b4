"""MinHash signatures of documents, computed in batches with numpy: the arithmetic of
``minhash_dedup``, free of files and pipeline steps (those are in ``corpus.dedup.step``).

Text is normalised (Unicode NFKC, case, punctuation, digits, whitespace) and cut into shingles:
word 5-grams, or character 5-grams for Chinese, Japanese, Thai and other scripts written without
spaces. Signatures use datasketch's MinHash scheme (``affine32``: the MurmurHash3 pre-mix, then
``a*h + b`` mod 2^32 with datasketch's own permutation parameters), computed for thousands of
documents at once instead of shingle by shingle; a test checks they equal datasketch's own
``MinHash.update_batch`` bit for bit.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import regex

_PUNCT = regex.compile(r"[\p{P}\p{S}]+")
_DIGITS = regex.compile(r"\d")
_ASCII_TABLE = str.maketrans({**{c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}, **{d: "0" for d in "0123456789"}})
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
    memory_mb: float = 512  # what one stage's buffers may hold (see corpus.dedup.step)

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


def connected_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clusters that pairs (``a[i]``, ``b[i]``) of int64 node keys join: (nodes, label) with
    ``nodes`` sorted and ``label`` the cluster of each, both arrays (scipy's connected components
    on the pair graph). Memory grows with the number of pairs, about 60 bytes each, never with
    Python objects per document."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    if not len(nodes):
        return nodes, np.zeros(0, np.int64)
    n = len(a)
    graph = coo_matrix((np.ones(n, np.int8), (inverse[:n], inverse[n:])), shape=(len(nodes), len(nodes)))
    _, label = components(graph, directed=False)
    return nodes, label.astype(np.int64)

