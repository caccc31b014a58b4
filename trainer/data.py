"""Loads a split of the Arrow token shards for training, without copying the token buffers.

The documents of a split form one *virtual* stream, ``doc0 <eos> doc1 <eos> ...``: the
token buffers stay memory-mapped views of the shard files, and a window of the stream is
gathered on demand, with the eos id placed at document boundaries. Training windows are
``block_size + 1`` tokens at multiples of ``block_size``, visited in a seeded random order
that is reshuffled every epoch. The order is a pure function of a *position* (how many
windows have been consumed), which is all a checkpoint needs to resume the data exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from corpus.core.shards import read_manifest, split_tokens


class PackedTokens:
    def __init__(self, folder: str | Path, split: str, eos_id: int):
        self.parts = split_tokens(folder, split)
        self.eos_id = eos_id
        lens, part_of, start_in_part = [], [], []
        for p, (_, offsets) in enumerate(self.parts):
            lens.append(np.diff(offsets))
            part_of.append(np.full(len(offsets) - 1, p, dtype=np.int32))
            start_in_part.append(offsets[:-1])
        self.lens = np.concatenate(lens) if lens else np.zeros(0, np.int64)
        self.part_of = np.concatenate(part_of) if part_of else np.zeros(0, np.int32)
        self.start_in_part = np.concatenate(start_in_part).astype(np.int64) if start_in_part else np.zeros(0, np.int64)
        # virtual start of each document: its tokens, then one eos
        self.vstart = np.concatenate([[0], np.cumsum(self.lens + 1)[:-1]]).astype(np.int64)
        self.veos = self.vstart + self.lens  # virtual position of each document's eos
        self.shift = self.start_in_part - self.vstart  # virtual position + shift = index in the document's part
        self.total = int((self.lens + 1).sum())
        self.documents = len(self.lens)

    def window(self, start: int, length: int) -> np.ndarray:
        return self.windows(np.array([start]), length)[0]

    def windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """Rows of ``length`` tokens of the virtual stream from each start, gathered at once: one
        binary search for the document of every position, one take per shard chunk read."""
        v = (np.asarray(starts, np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]).ravel()
        doc = np.searchsorted(self.vstart, v, side="right") - 1
        index = v + self.shift[doc]  # at an eos: the next document's first token, overwritten below
        out = np.empty(len(v), dtype=np.int64)
        if len(self.parts) == 1:
            self._take(0, index, out, slice(None))
        else:
            part = self.part_of[doc]
            for p in np.unique(part):
                self._take(p, index, out, part == p)
        out[v == self.veos[doc]] = self.eos_id
        return out.reshape(len(starts), length)

    def _take(self, part: int, index: np.ndarray, out: np.ndarray, where) -> None:
        tokens = self.parts[part][0]
        if len(tokens):  # else the chunk's documents are empty: all its positions are separators
            out[where] = tokens[np.minimum(index[where], len(tokens) - 1)]


class EpochOrder:
    """A seeded order over ``n`` items, reshuffled every epoch, read by position (items consumed so
    far): a pure function of the position, all a checkpoint needs to resume the data exactly."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self._order_epoch, self._order = -1, None

    def order(self, epoch: int) -> np.ndarray:
        """The item indices in the order an epoch visits them (the last epoch's is cached)."""
        if epoch != self._order_epoch:
            if self.shuffle:
                self._order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            else:
                self._order = np.arange(self.n)
            self._order_epoch = epoch
        return self._order

    def indices(self, position: int, count: int) -> np.ndarray:
        """The items at positions ``position .. position + count - 1`` of the order: slices of
        the epochs' orders, with no loop per item."""
        pieces = []
        while count > 0:
            epoch, k = divmod(position, self.n)
            n = min(count, self.n - k)
            pieces.append(self.order(epoch)[k : k + n])
            position, count = position + n, count - n
        return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)


class Batches:
    """Deterministic batches of (x, y) windows from a PackedTokens stream."""

    def __init__(self, data: PackedTokens, block_size: int, seed: int, shuffle: bool = True):
        self.data, self.block_size, self.seed, self.shuffle = data, block_size, seed, shuffle
        self.windows = (data.total - 1) // block_size
        if self.windows < 1:
            raise ValueError(
                f"the split has {data.total} tokens (with separators): too few for one window of "
                f"block_size {block_size} + 1; lower block_size or give the split more documents"
            )
        self.epochs = EpochOrder(self.windows, seed, shuffle)

    def order(self, epoch: int) -> np.ndarray:
        return self.epochs.order(epoch)

    def window_indices(self, position: int, count: int) -> np.ndarray:
        return self.epochs.indices(position, count)

    def get(self, position: int, batch_size: int, device: str | torch.device = "cpu"):
        """(x, y) of the ``batch_size`` windows from ``position``: x their first ``block_size``
        tokens, y the same shifted by one."""
        starts = self.window_indices(position, batch_size) * self.block_size
        t = torch.from_numpy(self.data.windows(starts, self.block_size + 1))
        if str(device).startswith("cuda"):
            t = t.pin_memory().to(device, non_blocking=True)
        elif str(device) != "cpu":
            t = t.to(device)
        return t[:, :-1], t[:, 1:]


def tokens_per_byte(folder: str | Path, split: str) -> float:
    """Tokens (with one separator per document) per UTF-8 byte of text: turns nats per token into
    bits per byte, a figure comparable across tokenizers."""
    totals = read_manifest(folder)["totals"][split]
    return (totals["tokens"] + totals["documents"]) / max(1, totals["bytes"])
