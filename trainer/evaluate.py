"""Evaluation: the validation loss during training, and a checkpoint's loss and bits per byte on
any text (``corpus eval``)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.distributed as dist

from corpus.trainer.checkpoint import checkpoint_tokenizer, load_model
from corpus.trainer.config import TrainConfig
from corpus.trainer.data import Batches
from corpus.trainer.runtime import autocast, pick_device


@torch.no_grad()
def evaluate(model, batches: Batches, cfg: TrainConfig, device: str, dtype, rank: int = 0, world: int = 1) -> float:
    """Mean loss over the first ``eval_batches x batch_size x processes`` validation windows (so
    the figure does not depend on how the global batch is shared out); each process scores its
    share and the sums are added up."""
    model.eval()
    windows = min(cfg.eval_batches * cfg.batch_size * world, batches.windows)
    chunks = [(s, min(cfg.batch_size, windows - s)) for s in range(0, windows, cfg.batch_size)]
    loss_sum, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for start, n in chunks[rank::world]:
        x, y = batches.get(start, n, device)
        with autocast(device, dtype):
            _, loss = model(x, y)
        loss_sum += loss.double() * n  # stays on the device: no host sync per batch
        count += n
    total = torch.stack([loss_sum, torch.tensor(float(count), dtype=torch.float64, device=device)])
    if world > 1:
        dist.all_reduce(total)
    model.train()
    return float(total[0] / total[1])


@torch.no_grad()
def evaluate_text(checkpoint: str | Path, text: str, device: str = "auto", batch_size: int = 8) -> dict:
    """Loss and bits per byte of a checkpoint on any text: the text is tokenized with the
    checkpoint's tokenizer and scored in windows of block_size tokens."""
    device = pick_device(device)
    model, state = load_model(checkpoint, device)
    model.eval()
    ids = checkpoint_tokenizer(state).encode(text)
    T = model.block_size
    if len(ids) < 2:
        raise ValueError("the text is too short to evaluate (fewer than 2 tokens)")
    starts = list(range(0, len(ids) - 1, T))
    total_loss, total_tokens = 0.0, 0
    full = [s for s in starts if s + T + 1 <= len(ids)]
    last = [s for s in starts if s + T + 1 > len(ids)]
    for group in [full[i : i + batch_size] for i in range(0, len(full), batch_size)] + [[s] for s in last]:
        rows = torch.tensor([ids[s : s + T + 1] for s in group], device=device)
        _, loss = model(rows[:, :-1], rows[:, 1:])
        total_loss += loss.item() * rows[:, 1:].numel()
        total_tokens += rows[:, 1:].numel()
    nats = total_loss / total_tokens
    n_bytes = len(text.encode("utf-8"))
    return {"tokens": len(ids), "bytes": n_bytes, "loss": round(nats, 4),
            "bits_per_byte": round(total_loss / math.log(2) / n_bytes, 4)}
