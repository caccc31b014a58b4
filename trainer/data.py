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
        v = np.arange(start, start + length, dtype=np.int64)
        doc = np.searchsorted(self.vstart, v, side="right") - 1
        local = v - self.vstart[doc]
        out = np.full(length, self.eos_id, dtype=np.int64)
        is_token = local < self.lens[doc]
        parts = self.part_of[doc]
        for p in np.unique(parts[is_token]):
            mask = is_token & (parts == p)
            out[mask] = self.parts[p][0][self.start_in_part[doc[mask]] + local[mask]]
        return out


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
        rows = np.stack(
            [self.data.window(self._window_index(position + j) * self.block_size, self.block_size + 1) for j in range(batch_size)]
        )
        t = torch.from_numpy(rows)
        x, y = t[:, :-1], t[:, 1:]
        if str(device).startswith("cuda"):
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x.to(device), y.to(device)


def tokens_per_byte(folder: str | Path, split: str) -> float:
    """Tokens (with one separator per document) per UTF-8 byte of text: turns nats per token into
    bits per byte, a figure comparable across tokenizers."""
    totals = read_manifest(folder)["totals"][split]
    return (totals["tokens"] + totals["documents"]) / max(1, totals["bytes"])
