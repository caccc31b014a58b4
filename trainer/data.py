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

from corpus.shards import read_manifest, split_tokens


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
        self.total = int((self.lens + 1).sum())
        self.documents = len(self.lens)

    def window(self, start: int, length: int) -> np.ndarray:
        return self.windows(np.array([start]), length)[0]

    def windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        """Rows of ``length`` tokens of the virtual stream from each start, gathered at once."""
        v = (np.asarray(starts, np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]).ravel()
        doc = np.searchsorted(self.vstart, v, side="right") - 1
        local = v - self.vstart[doc]
        out = np.full(len(v), self.eos_id, dtype=np.int64)
        is_token = local < self.lens[doc]
        if len(self.parts) == 1:
            idx = np.flatnonzero(is_token)
            out[idx] = self.parts[0][0][self.start_in_part[doc[idx]] + local[idx]]
        else:
            parts = np.where(is_token, self.part_of[doc], -1)
            for p in np.flatnonzero(np.bincount(parts + 1, minlength=len(self.parts) + 1)[1:]):
                sel = np.flatnonzero(parts == p)  # positions that read this shard chunk
                out[sel] = self.parts[p][0][self.start_in_part[doc[sel]] + local[sel]]
        return out.reshape(len(starts), length)


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
        self._perm_epoch, self._perm = -1, None

    def _window_index(self, i: int) -> int:
        epoch, k = divmod(i, self.windows)
        if not self.shuffle:
            return k
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.windows)
            self._perm_epoch = epoch
        return int(self._perm[k])

    def get(self, position: int, batch_size: int, device: str | torch.device = "cpu"):
        starts = np.array([self._window_index(position + j) for j in range(batch_size)], np.int64) * self.block_size
        t = torch.from_numpy(self.data.windows(starts, self.block_size + 1))
        x, y = t[:, :-1], t[:, 1:]
        if str(device).startswith("cuda"):
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x.to(device), y.to(device)


def tokens_per_byte(folder: str | Path, split: str) -> float:
    """Tokens (with one separator per document) per UTF-8 byte of text: turns nats per token into
    bits per byte, a figure comparable across tokenizers."""
    totals = read_manifest(folder)["totals"][split]
    return (totals["tokens"] + totals["documents"]) / max(1, totals["bytes"])
