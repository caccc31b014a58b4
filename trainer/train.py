"""The training loop: AdamW, linear warmup then cosine decay, gradient accumulation and clipping,
bf16 autocast on CUDA, periodic evaluation (validation loss and bits per byte), atomic
checkpoints that hold everything needed to resume (model, optimizer, RNG states, step, data
position), a metrics CSV, and a generated sample at the end.

Read it top to bottom: ``train()`` is the whole story.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from loguru import logger

from corpus.io import atomic_path, write_json
from corpus.shards import read_manifest
from trainer.config import TrainConfig
from trainer.data import Batches, PackedTokens, tokens_per_byte
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
    model = GPT(state["vocab_size"], c["block_size"], c["n_layer"], c["n_head"], c["n_embd"], c["dropout"])
    model.load_state_dict(state["model"])
    return model.to(device), state


@torch.no_grad()
def evaluate(model, batches: Batches, cfg: TrainConfig, device: str, dtype) -> float:
    model.eval()
    n = min(cfg.eval_batches, max(1, batches.windows // cfg.batch_size))
    losses = []
    for i in range(n):
        x, y = batches.get(i * cfg.batch_size, min(cfg.batch_size, batches.windows), device)
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            _, loss = model(x, y)
        losses.append(loss.item())
    model.train()
    return float(np.mean(losses))


def train(shards_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, stop_at: int | None = None) -> dict:
    """Train (or resume) up to ``cfg.max_steps``; ``stop_at`` ends this run earlier, as an
    interruption would, leaving the checkpoint of the last evaluation to resume from."""
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    dtype = autocast_dtype(cfg, device)
    manifest = read_manifest(shards_dir)
    vocab_size, eos_id = manifest["tokenizer"]["vocab_size"], manifest["tokenizer"]["eos_id"]
    train_batches = Batches(PackedTokens(shards_dir, "train", eos_id), cfg.block_size, cfg.seed)
    val_batches = Batches(PackedTokens(shards_dir, "val", eos_id), cfg.block_size, cfg.seed, shuffle=False)
    val_tpb = tokens_per_byte(shards_dir, "val")

    torch.manual_seed(cfg.seed)
    model = GPT(vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.dropout).to(device)
    optimizer = make_optimizer(model, cfg, device)
    step, position, history = 0, 0, []
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["config"] != asdict(cfg) | {"max_steps": state["config"]["max_steps"]}:
            raise ValueError(f"{ckpt_path} was made with another configuration; remove {out_dir} to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        step, position, history = state["step"], state["data_position"], state.get("history", [])
        logger.info(f"train: resuming from {ckpt_path} at step {step}")
    metrics_rows = _read_metrics(out_dir / METRICS, up_to=step)
    run_model = torch.compile(model) if cfg.compile else model

    n_params = model.num_params()
    tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.block_size
    logger.info(
        f"train: {n_params / 1e6:.2f}M parameters, device {device}, {train_batches.data.total} train tokens, "
        f"{val_batches.data.total} val tokens, {tokens_per_step} tokens/step, {cfg.max_steps} steps"
    )

    def eval_and_log(at_step: int, train_loss: float | None, tok_s: float | None, elapsed: float):
        val_loss = evaluate(run_model, val_batches, cfg, device, dtype)
        bpb = val_loss / math.log(2) * val_tpb
        row = {"step": at_step, "train_loss": train_loss, "val_loss": round(val_loss, 4), "val_bpb": round(bpb, 4),
               "lr": lr_at(min(at_step, cfg.max_steps - 1), cfg), "tokens_per_s": tok_s, "elapsed_s": round(elapsed, 1)}
        history.append(row)
        metrics_rows.append(row)
        _write_metrics(out_dir / METRICS, metrics_rows)
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
        for _ in range(cfg.grad_accum):
            x, y = train_batches.get(position, cfg.batch_size, device)
            position += cfg.batch_size
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                _, loss = run_model(x, y)
            (loss / cfg.grad_accum).backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_since += tokens_per_step
        loss_value = loss.item()
        if step % cfg.log_interval == 0 or step == cfg.max_steps:
            now = time.time()
            tok_s = tokens_since / max(1e-9, now - t_log)
            logger.info(f"train: step {step}/{cfg.max_steps} loss {loss_value:.4f} lr {lr:.2e} {tok_s:,.0f} tok/s")
            t_log, tokens_since = now, 0
        if step % cfg.eval_interval == 0 or step == cfg.max_steps:
            row = eval_and_log(step, round(loss_value, 4), round(tokens_per_step * step / max(1e-9, time.time() - t_start)), time.time() - t_start)
            every = cfg.checkpoint_interval or cfg.eval_interval
            if step % every == 0 or step == cfg.max_steps:
                save_checkpoint(ckpt_path, model, optimizer, cfg, step, position,
                                {"vocab_size": vocab_size, "eos_id": eos_id, "history": history,
                                 "tokenizer": str((shards_dir / manifest["tokenizer"]["path"]).resolve())})

    sample = generate_sample(model, shards_dir / manifest["tokenizer"]["path"], cfg, device)
    (out_dir / "sample.txt").write_text(sample, encoding="utf-8")
    print(f"\n--- sample ---\n{sample}\n--------------", flush=True)
    evals = [h for h in history if h.get("val_loss") is not None]
    result = {
        "parameters": n_params,
        "device": device,
        "steps": step,
        "tokens_per_step": tokens_per_step,
        "first_val_loss": evals[0]["val_loss"] if evals else None,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "first_val_bpb": evals[0]["val_bpb"] if evals else None,
        "final_val_bpb": evals[-1]["val_bpb"] if evals else None,
        "final_train_loss": round(loss_value, 4) if loss_value is not None else None,
        "seconds_this_run": round(time.time() - t_start, 1),
        "checkpoint": str(ckpt_path),
        "sample": sample,
    }
    write_json(out_dir / "result.json", result)
    logger.info(f"train: val loss {result['first_val_loss']} → {result['final_val_loss']}, "
                f"val bits/byte {result['first_val_bpb']} → {result['final_val_bpb']}")
    return result


def generate_sample(model: GPT, tokenizer_path, cfg: TrainConfig, device: str) -> str:
    from tokenizer.sp import Tokenizer

    tok = Tokenizer(tokenizer_path)
    prompt = tok.encode(cfg.sample_prompt) if cfg.sample_prompt else [tok.eos_id]
    idx = torch.tensor([prompt], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model.eval()
    out = model.generate(idx, cfg.sample_tokens, cfg.temperature, cfg.top_k, generator=gen)[0].tolist()
    model.train()
    body = [t for t in out[len(prompt):] if t != tok.eos_id]
    return cfg.sample_prompt + tok.decode(body)


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
