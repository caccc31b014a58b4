"""The training loop: AdamW, linear warmup then cosine decay, gradient accumulation and clipping,
bf16 autocast on CUDA, periodic evaluation (validation loss and bits per byte), atomic
checkpoints that hold everything needed to resume (model, optimizer, RNG states, step, data
position), a metrics CSV, and a generated sample at the end.

Read it top to bottom: ``train()`` is the whole story.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from loguru import logger
from torch.nn.parallel import DistributedDataParallel as DDP

from corpus.io import atomic_path, write_json
from corpus.shards import read_manifest
from trainer.config import TrainConfig
from trainer.data import Batches, PackedTokens, tokens_per_byte
from trainer.mfu import flops_per_token, peak_flops
from trainer.model import GPT

CHECKPOINT = "ckpt.pt"
METRICS = "metrics.csv"
METRIC_FIELDS = ["step", "train_loss", "val_loss", "val_bpb", "lr", "tokens_per_s", "elapsed_s"]


def pick_device(name: str) -> str:
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def autocast_dtype(cfg: TrainConfig, device: str):
    if cfg.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else None
    return {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (cfg.learning_rate - cfg.min_lr)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
                             fused=device.startswith("cuda"))


def save_checkpoint(path: Path, model, optimizer, cfg: TrainConfig, step: int, position: int, extra: dict) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": asdict(cfg),
        "step": step,
        "data_position": position,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_model(checkpoint: str | Path, device: str = "cpu") -> tuple[GPT, dict]:
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    c = state["config"]
    model = GPT(state["vocab_size"], c["block_size"], c["n_layer"], c["n_head"], c["n_embd"], c["dropout"], c.get("rope", False))
    model.load_state_dict(state["model"])
    return model.to(device), state


@torch.no_grad()
def evaluate(model, batches: Batches, cfg: TrainConfig, device: str, dtype, rank: int = 0, world: int = 1) -> float:
    """Mean loss over the first ``eval_batches x batch_size x processes`` validation windows (so
    the figure does not depend on how the global batch is shared out); each process scores its
    share and the sums are added up."""
    model.eval()
    windows = min(cfg.eval_batches * cfg.batch_size * world, batches.windows)
    chunks = [(s, min(cfg.batch_size, windows - s)) for s in range(0, windows, cfg.batch_size)]
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for start, n in chunks[rank::world]:
        x, y = batches.get(start, n, device)
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            _, loss = model(x, y)
        total += torch.tensor([loss.item() * n, n], dtype=torch.float64, device=device)
    if world > 1:
        dist.all_reduce(total)
    model.train()
    return float(total[0] / total[1])


def setup_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank). Under ``torchrun`` (WORLD_SIZE > 1) joins the process
    group: NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if world > 1:
        return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def train(shards_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, stop_at: int | None = None) -> dict:
    """Train (or resume) up to ``cfg.max_steps``; ``stop_at`` ends this run earlier, as an
    interruption would, leaving the checkpoint of the last evaluation to resume from.

    Under ``torchrun``, every process takes ``batch_size`` windows of each global batch of
    ``batch_size x processes`` (so the result matches one process with that batch) and DDP
    averages the gradients; process 0 writes metrics, checkpoints and the sample."""
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    rank, world, local_rank = setup_distributed()
    master = rank == 0
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if device == "cuda" and world > 1:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    dtype = autocast_dtype(cfg, device)
    manifest = read_manifest(shards_dir)
    vocab_size, eos_id = manifest["tokenizer"]["vocab_size"], manifest["tokenizer"]["eos_id"]
    train_batches = Batches(PackedTokens(shards_dir, "train", eos_id), cfg.block_size, cfg.seed)
    val_batches = Batches(PackedTokens(shards_dir, "val", eos_id), cfg.block_size, cfg.seed, shuffle=False)
    val_tpb = tokens_per_byte(shards_dir, "val")

    torch.manual_seed(cfg.seed)
    model = GPT(vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.dropout, cfg.rope).to(device)
    optimizer = make_optimizer(model, cfg, device)
    step, position, history = 0, 0, []
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["config"] != asdict(cfg) | {"max_steps": state["config"]["max_steps"]} or state.get("world", 1) != world:
            raise ValueError(f"{ckpt_path} was made with another configuration or process count; "
                             f"remove {out_dir} to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        step, position, history = state["step"], state["data_position"], state.get("history", [])
        if master:
            logger.info(f"train: resuming from {ckpt_path} at step {step}")
    metrics_rows = _read_metrics(out_dir / METRICS, up_to=step) if master else []
    compiled = torch.compile(model) if cfg.compile else model
    run_model = DDP(compiled, device_ids=[local_rank] if device.startswith("cuda") else None) if world > 1 else compiled

    n_params = model.num_params()
    tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.block_size * world
    token_flops = flops_per_token(n_params, cfg.n_layer, cfg.n_embd, cfg.block_size)
    peak, peak_source = peak_flops(device, dtype)
    if master:
        logger.info(
            f"train: {n_params / 1e6:.2f}M parameters, device {device} x {world}, {train_batches.data.total} train tokens, "
            f"{val_batches.data.total} val tokens, {tokens_per_step} tokens/step, {cfg.max_steps} steps; "
            f"MFU against {peak / 1e12:.2f} TFLOP/s per process ({peak_source})"
        )

    def eval_and_log(at_step: int, train_loss: float | None, tok_s: float | None, elapsed: float):
        val_loss = evaluate(compiled, val_batches, cfg, device, dtype, rank, world)
        bpb = val_loss / math.log(2) * val_tpb
        row = {"step": at_step, "train_loss": train_loss, "val_loss": round(val_loss, 4), "val_bpb": round(bpb, 4),
               "lr": lr_at(min(at_step, cfg.max_steps - 1), cfg), "tokens_per_s": tok_s, "elapsed_s": round(elapsed, 1)}
        history.append(row)
        if master:
            metrics_rows.append(row)
            _write_metrics(out_dir / METRICS, metrics_rows)
            plot_losses(metrics_rows, out_dir / "loss.png")
            logger.info(f"train: step {at_step}/{cfg.max_steps} val loss {val_loss:.4f}, val bits/byte {bpb:.4f}")
        return row

    t_start = time.time()
    if step == 0 and not history:
        eval_and_log(0, None, None, 0.0)
    model.train()
    t_log, tokens_since = time.time(), 0
    loss_value = None
    while step < (cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            # this process's share of the global batch: windows rank*B .. rank*B+B-1
            x, y = train_batches.get(position + rank * cfg.batch_size, cfg.batch_size, device)
            position += cfg.batch_size * world
            sync = world == 1 or micro == cfg.grad_accum - 1
            with (contextlib.nullcontext() if sync else run_model.no_sync()):
                with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                    _, loss = run_model(x, y)
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_since += tokens_per_step
        if world > 1:
            dist.all_reduce(loss_sum)
        loss_value = loss_sum.item() / cfg.grad_accum / world
        if master and (step % cfg.log_interval == 0 or step == cfg.max_steps):
            now = time.time()
            tok_s = tokens_since / max(1e-9, now - t_log)
            mfu = tok_s * token_flops / (peak * world)
            logger.info(f"train: step {step}/{cfg.max_steps} loss {loss_value:.4f} lr {lr:.2e} {tok_s:,.0f} tok/s, MFU {mfu:.1%}")
            t_log, tokens_since = now, 0
        if step % cfg.eval_interval == 0 or step == cfg.max_steps:
            eval_and_log(step, round(loss_value, 4), round(tokens_per_step * step / max(1e-9, time.time() - t_start)),
                         time.time() - t_start)
            every = cfg.checkpoint_interval or cfg.eval_interval
            if master and (step % every == 0 or step == cfg.max_steps):
                save_checkpoint(ckpt_path, model, optimizer, cfg, step, position,
                                {"vocab_size": vocab_size, "eos_id": eos_id, "history": history, "world": world,
                                 "tokenizer": str((shards_dir / manifest["tokenizer"]["path"]).resolve())})
            if world > 1:
                dist.barrier()

    evals = [h for h in history if h.get("val_loss") is not None]
    result = {
        "parameters": n_params,
        "device": device,
        "processes": world,
        "steps": step,
        "tokens_per_step": tokens_per_step,
        "first_val_loss": evals[0]["val_loss"] if evals else None,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "first_val_bpb": evals[0]["val_bpb"] if evals else None,
        "final_val_bpb": evals[-1]["val_bpb"] if evals else None,
        "final_train_loss": round(loss_value, 4) if loss_value is not None else None,
        "seconds_this_run": round(time.time() - t_start, 1),
        "checkpoint": str(ckpt_path),
    }
    if master:
        sample = generate_sample(model, shards_dir / manifest["tokenizer"]["path"], cfg, device)
        (out_dir / "sample.txt").write_text(sample, encoding="utf-8")
        print(f"\n--- sample ---\n{sample}\n--------------", flush=True)
        result["sample"] = sample
        write_json(out_dir / "result.json", result)
        logger.info(f"train: val loss {result['first_val_loss']} → {result['final_val_loss']}, "
                    f"val bits/byte {result['first_val_bpb']} → {result['final_val_bpb']}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def plot_losses(rows: list[dict], path: Path) -> None:
    """The loss curve (train and validation loss by step) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(s, float(r["train_loss"])) for s, r in zip(steps, rows) if r.get("train_loss") not in (None, "")]
    if train:
        ax.plot(*zip(*train), label="train loss")
    ax.plot(steps, [float(r["val_loss"]) for r in rows], marker="o", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


@torch.no_grad()
def evaluate_text(checkpoint: str | Path, text: str, device: str = "auto", batch_size: int = 8) -> dict:
    """Loss and bits per byte of a checkpoint on any text: the text is tokenized with the
    checkpoint's tokenizer and scored in windows of block_size tokens."""
    from tokenizer.sp import Tokenizer

    device = pick_device(device)
    model, state = load_model(checkpoint, device)
    model.eval()
    ids = Tokenizer(state["tokenizer"]).encode(text)
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


def sample_text(model: GPT, tok, prompt: str, tokens: int, temperature: float, top_k: int, seed: int, device: str) -> str:
    """Continue ``prompt`` (or start a document, after an eos) with ``tokens`` sampled tokens."""
    ids = tok.encode(prompt) if prompt else [tok.eos_id]
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    out = model.generate(torch.tensor([ids], dtype=torch.long, device=device), tokens, temperature, top_k, generator=gen)
    model.train(was_training)
    return prompt + tok.decode([t for t in out[0].tolist()[len(ids):] if t != tok.eos_id])


def generate_sample(model: GPT, tokenizer_path, cfg: TrainConfig, device: str) -> str:
    from tokenizer.sp import Tokenizer

    return sample_text(model, Tokenizer(tokenizer_path), cfg.sample_prompt, cfg.sample_tokens, cfg.temperature,
                       cfg.top_k, cfg.seed, device)


def _read_metrics(path: Path, up_to: int) -> list[dict]:
    if not path.exists() or up_to == 0:
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["step"]) <= up_to]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            w.writeheader()
            for row in rows:
                w.writerow({k: row.get(k) for k in METRIC_FIELDS})
