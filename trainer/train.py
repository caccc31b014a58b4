"""The training loop: AdamW, linear warmup then cosine decay, gradient accumulation and clipping,
bf16 autocast on CUDA, periodic evaluation (validation loss and bits per byte), atomic
checkpoints that hold everything needed to resume, a metrics CSV and loss plot, and a generated
sample at the end.

Read ``train()`` top to bottom: ``setup`` builds the run (device, data, model, optimizer),
``resume`` (``checkpoint.py``) restores a checkpoint's state, ``run_steps`` is the loop, and
``finish`` writes the sample and the result.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from loguru import logger
from torch.nn.parallel import DistributedDataParallel as DDP

from corpus.core.io import write_json
from corpus.core.shards import local as local_shards, read_manifest
from corpus.trainer.checkpoint import CHECKPOINT, Progress, resume, save_checkpoint
from corpus.trainer.config import TrainConfig
from corpus.trainer.data import Batches, PackedTokens, tokens_per_byte
from corpus.trainer.evaluate import evaluate
from corpus.trainer.metrics import MetricsLog
from corpus.trainer.mfu import flops_per_token, peak_flops
from corpus.trainer.model import GPT, GPTConfig
from corpus.trainer.runtime import autocast, autocast_dtype, pick_device, setup_distributed
from corpus.trainer.sample import generate_sample


def train(shards_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, stop_at: int | None = None) -> dict:
    """Train (or resume) up to ``cfg.max_steps``; ``stop_at`` ends this run earlier, as an
    interruption would, leaving the checkpoint of the last evaluation to resume from.

    Under ``torchrun``, every process takes ``batch_size`` windows of each global batch of
    ``batch_size x processes`` (so the result matches one process with that batch) and DDP
    averages the gradients; process 0 writes metrics, checkpoints and the sample."""
    run = setup(local_shards(shards_dir), Path(out_dir), cfg)  # shards on object storage: a checked local copy
    run.progress = resume(run.checkpoint, run.model, run.optimizer, cfg, run.world, run.device)
    if run.master and run.progress.step:
        logger.info(f"train: resuming from {run.checkpoint} at step {run.progress.step}")
    run.metrics = MetricsLog(run.out_dir, run.progress.step, enabled=run.master)
    run.t_start = time.time()
    run.window = (run.progress.step, run.t_start)
    if run.progress.step == 0 and not run.progress.history:
        evaluate_and_record(run, train_loss=None)
    last_loss = run_steps(run, until=cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps))
    return finish(run, last_loss)


@dataclass
class Run:
    """A training run: what ``setup`` builds, and the progress that ``run_steps`` advances."""

    cfg: TrainConfig
    out_dir: Path
    rank: int
    world: int
    device: str
    dtype: torch.dtype | None
    tokenizer: str  # the tokenizer model's path
    # ... and the model itself, read once: every checkpoint carries it (usable where that path is not)
    tokenizer_model: bytes
    vocab_size: int
    eos_id: int
    train_batches: Batches
    val_batches: Batches
    val_tokens_per_byte: float
    model: GPT  # the bare model: its parameters, state dict and samples
    compiled: torch.nn.Module  # the model as evaluated: torch.compile'd when asked
    ddp: torch.nn.Module  # the model as trained: ``compiled`` in DDP when there are several processes
    optimizer: torch.optim.Optimizer
    tokens_per_step: int
    peak_flops: float = 0.0  # per process, for the MFU in the log
    progress: Progress = field(default_factory=Progress)
    metrics: MetricsLog | None = None
    t_start: float = 0.0  # when this run (not an earlier, resumed one) started
    window: tuple[int, float] = (0, 0.0)  # (step, time) where the current throughput window opened

    def elapsed(self) -> float:
        """Training seconds so far, earlier runs included."""
        return self.progress.elapsed_s + time.time() - self.t_start

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT


def setup(shards_dir: Path, out_dir: Path, cfg: TrainConfig) -> Run:
    """Processes, device, data, model and optimizer, for a run from step 0."""
    rank, world, local_rank = setup_distributed()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if device == "cuda" and world > 1:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    dtype = autocast_dtype(cfg, device)
    tok = read_manifest(shards_dir)["tokenizer"]

    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig.from_train_config(asdict(cfg), tok["vocab_size"])).to(device)
    compiled = torch.compile(model) if cfg.compile else model
    run = Run(
        cfg=cfg, out_dir=out_dir, rank=rank, world=world, device=device, dtype=dtype,
        tokenizer=str((shards_dir / tok["path"]).resolve()),
        tokenizer_model=(shards_dir / tok["path"]).read_bytes(), vocab_size=tok["vocab_size"], eos_id=tok["eos_id"],
        train_batches=batches(shards_dir, "train", tok["eos_id"], cfg),
        val_batches=batches(shards_dir, "val", tok["eos_id"], cfg),
        val_tokens_per_byte=tokens_per_byte(shards_dir, "val"),
        model=model, compiled=compiled, optimizer=make_optimizer(model, cfg, device),
        ddp=DDP(compiled, device_ids=[local_rank] if device.startswith("cuda") else None) if world > 1 else compiled,
        tokens_per_step=cfg.batch_size * cfg.grad_accum * cfg.block_size * world,
    )
    run.peak_flops, peak_source = peak_flops(device, dtype)
    if run.master:
        logger.info(
            f"train: {model.num_params() / 1e6:.2f}M parameters, device {device} x {world}, "
            f"{run.train_batches.data.total} train tokens, {run.val_batches.data.total} val tokens, "
            f"{run.tokens_per_step} tokens/step, {cfg.max_steps} steps; "
            f"MFU against {run.peak_flops / 1e12:.2f} TFLOP/s per process ({peak_source})"
        )
    return run


def batches(shards_dir: Path, split: str, eos_id: int, cfg: TrainConfig) -> Batches:
    """A split's windows of ``block_size`` + 1 tokens; a split too small for one (a tiny corpus)
    gets windows as long as it has, with a warning, rather than no training or no evaluation."""
    data = PackedTokens(shards_dir, split, eos_id)
    block = min(cfg.block_size, data.total - 1)
    if block < 1:
        raise ValueError(f"the {split} split has {data.total} tokens (with separators): nothing to "
                         f"{'train on' if split == 'train' else 'evaluate'}; give the run more text")
    if block < cfg.block_size:
        logger.warning(f"train: the {split} split has only {data.total} tokens; its windows are {block} tokens "
                       f"instead of block_size {cfg.block_size}")
    return Batches(data, block, cfg.seed, shuffle=split == "train")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (not on norms or other vectors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
                             fused=device.startswith("cuda"))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``learning_rate``, then cosine decay to ``min_lr`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (cfg.learning_rate - cfg.min_lr)


def run_steps(run: Run, until: int) -> float | None:
    """Optimizer steps up to step ``until``, with logging, evaluation and checkpoints at their
    intervals; returns the last step's training loss (None when no step ran). The loss is
    read back from the device only on the steps that report it."""
    cfg, progress = run.cfg, run.progress
    token_flops = flops_per_token(run.model.num_params(), cfg.n_layer, cfg.n_embd, cfg.block_size)
    t_log, tokens_since, loss = time.time(), 0, None
    run.model.train()
    while progress.step < until:
        lr = lr_at(progress.step, cfg)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = accumulate_gradients(run)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        tokens_since += run.tokens_per_step
        step = progress.step
        log_now = step % cfg.log_interval == 0 or step == cfg.max_steps
        eval_now = step % cfg.eval_interval == 0 or step == cfg.max_steps
        checkpoint_now = step % (cfg.checkpoint_interval or cfg.eval_interval) == 0 or step == cfg.max_steps
        if not (log_now or eval_now or checkpoint_now or step == until):
            continue
        loss = progress.train_loss = mean_loss(run, loss_sum)
        if log_now and run.master:
            now = time.time()
            tok_s = tokens_since / max(1e-9, now - t_log)
            mfu = tok_s * token_flops / (run.peak_flops * run.world)
            logger.info(f"train: step {step}/{cfg.max_steps} loss {loss:.4f} lr {lr:.2e} {tok_s:,.0f} tok/s, MFU {mfu:.1%}")
            t_log, tokens_since = now, 0
        if eval_now:
            evaluate_and_record(run, round(loss, 4))
        if checkpoint_now:
            save(run)
    return loss


def accumulate_gradients(run: Run) -> torch.Tensor:
    """Forward and backward over ``grad_accum`` micro-batches; the sum of their losses, on the device."""
    cfg, progress = run.cfg, run.progress
    loss_sum = None
    for micro in range(cfg.grad_accum):
        # this process's share of the global batch: windows rank*B .. rank*B+B-1
        x, y = run.train_batches.get(progress.position + run.rank * cfg.batch_size, cfg.batch_size, run.device)
        progress.position += cfg.batch_size * run.world
        sync = run.world == 1 or micro == cfg.grad_accum - 1  # DDP averages gradients on the last one
        with contextlib.nullcontext() if sync else run.ddp.no_sync():
            with autocast(run.device, run.dtype):
                _, loss = run.ddp(x, y)
            (loss / cfg.grad_accum).backward()
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
    return loss_sum


def mean_loss(run: Run, loss_sum: torch.Tensor) -> float:
    """The step's training loss, averaged over micro-batches and processes (a host sync)."""
    if run.world > 1:
        dist.all_reduce(loss_sum)
    return loss_sum.item() / run.cfg.grad_accum / run.world


def evaluate_and_record(run: Run, train_loss: float | None) -> None:
    """Validation loss and bits per byte at the current step, into the history and the metrics."""
    cfg, step = run.cfg, run.progress.step
    window_steps, window_seconds = step - run.window[0], time.time() - run.window[1]
    val_loss = evaluate(run.compiled, run.val_batches, cfg, run.device, run.dtype, run.rank, run.world)
    bpb = val_loss / math.log(2) * run.val_tokens_per_byte
    run.progress.history.append({
        "step": step, "train_loss": train_loss, "val_loss": round(val_loss, 4), "val_bpb": round(bpb, 4),
        "lr": lr_at(min(step, cfg.max_steps - 1), cfg),
        # training throughput since the last evaluation (or this run's start), evaluations excluded
        "tokens_per_s": round(run.tokens_per_step * window_steps / max(1e-9, window_seconds)) if window_steps else None,
        "elapsed_s": round(run.elapsed(), 1),
    })
    run.metrics.add(run.progress.history[-1])
    run.window = (step, time.time())
    if run.master:
        logger.info(f"train: step {step}/{cfg.max_steps} val loss {val_loss:.4f}, val bits/byte {bpb:.4f}")


def save(run: Run) -> None:
    """Process 0 saves the checkpoint (every ``checkpoint_interval`` steps, by default at each
    evaluation, and at the end); the processes then wait for each other."""
    if run.master:
        save_checkpoint(run.checkpoint, run.model, run.optimizer, run.cfg, run.progress.step, run.progress.position,
                        {"vocab_size": run.vocab_size, "eos_id": run.eos_id, "history": run.progress.history,
                         "world": run.world, "tokenizer": run.tokenizer, "tokenizer_model": run.tokenizer_model,
                         "elapsed_s": run.elapsed(),
                         "train_loss": run.progress.train_loss})
    if run.world > 1:
        dist.barrier()


def finish(run: Run, last_loss: float | None) -> dict:
    """The run's result (also ``result.json``) and, from process 0, the generated sample."""
    evals = [h for h in run.progress.history if h.get("val_loss") is not None]
    result = {
        "parameters": run.model.num_params(),
        "device": run.device,
        "processes": run.world,
        "steps": run.progress.step,
        "tokens_per_step": run.tokens_per_step,
        "first_val_loss": evals[0]["val_loss"] if evals else None,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "first_val_bpb": evals[0]["val_bpb"] if evals else None,
        "final_val_bpb": evals[-1]["val_bpb"] if evals else None,
        # a run resumed from its final checkpoint takes no step: the loss is the checkpoint's
        "final_train_loss": round(last_loss if last_loss is not None else run.progress.train_loss, 4)
        if last_loss is not None or run.progress.train_loss is not None else None,
        "seconds_this_run": round(time.time() - run.t_start, 1),
        "checkpoint": str(run.checkpoint),
    }
    if run.master:
        if run.cfg.sample_tokens:
            sample = generate_sample(run.model, run.tokenizer, run.cfg, run.device)
            (run.out_dir / "sample.txt").write_text(sample, encoding="utf-8")
            print(f"\n--- sample ---\n{sample}\n--------------", flush=True)
            result["sample"] = sample
        write_json(run.out_dir / "result.json", result)
        logger.info(f"train: val loss {result['first_val_loss']} → {result['final_val_loss']}, "
                    f"val bits/byte {result['first_val_bpb']} → {result['final_val_bpb']}")
    if run.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result
