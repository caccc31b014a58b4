"""Training throughput, in two modes.

Model mode (default): corpus's GPT vs Hugging Face ``transformers`` GPT-2 (``GPT2LMHeadModel``).

    python bench/train.py                                   # CPU, a small model
    python bench/train.py --device cuda --dtype bfloat16 --n-layer 12 --n-head 12 --n-embd 768 \\
        --block-size 1024 --batch-size 16 --vocab-size 50304 --compile      # GPT-2 124M on a GPU

Both models get the same size (layers, heads, width, vocabulary, context), the same batch of
random token ids, AdamW, and the same number of timed training steps (forward, backward,
optimizer step) after warm-up steps; each measurement is the median of ``--repeats`` runs.

Loop mode (``--loop``): OUR whole training loop against a plain-tensor loop.

    OMP_WAIT_POLICY=PASSIVE python bench/train.py --loop --threads 2     # nanoGPT's CPU configuration

The reference is NOT nanoGPT itself (it is not on PyPI) but our own plain-tensor loop written
here to be equivalent to nanoGPT's ``train.py``: the token stream as one flat numpy uint16 array,
nanoGPT's ``get_batch`` (``torch.randint`` offsets, ``torch.stack`` of slices), its loop body
(lr set per step, forward, backward, gradient clipping at 1.0, AdamW step, ``loss.item()`` every
``log_interval`` steps; the GradScaler, a pass-through outside float16, is left out), and the
same GPT class, size, optimizer settings and step count. Ours is ``corpus.trainer.train``'s
``setup`` then ``run_steps`` on real shards: tinyshakespeare cut into documents of 20 paragraphs
(as ``bench/tinyshakespeare.py`` does), a BPE tokenizer of ``--vocab-size`` tokens (default 512,
close to nanoGPT's character-level run), shards split 90/10. Neither loop evaluates while timed.
The defaults are nanoGPT's CPU configuration: 4 layers, 4 heads, 128 wide, context 64, batch 12,
float32, dropout 0. The two loops alternate; tokens/s is the median over ``--repeats`` rounds of
``--steps`` steps each. The loader's share is ms per ``Batches.get`` (one batch) over ms per step,
and a breakdown of our step (loader, forward, backward, clipping, optimizer, loop bookkeeping)
is timed part by part with our own components, in rounds between the loops' rounds.

MFU = achieved FLOP/s / peak FLOP/s, as the trainer logs it (``trainer/mfu.py``): nanoGPT's
count of 6N + 12·L·T·d FLOPs per token, and the datasheet peak for known GPUs in bf16, else the
FLOP/s of a large matrix product measured on this machine in the same precision.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus.trainer.mfu import flops_per_token, peak_flops, sync  # noqa: E402
from corpus.trainer.model import GPT, GPTConfig  # noqa: E402

MODEL_DEFAULTS = dict(n_layer=4, n_head=4, n_embd=256, block_size=256, batch_size=8, vocab_size=8192, steps=10, repeats=3,
                      warmup=3)
LOOP_DEFAULTS = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab_size=512, steps=50, repeats=5,
                     warmup=10)


def model_config(args) -> GPTConfig:
    return GPTConfig(args.vocab_size, args.block_size, args.n_layer, args.n_head, args.n_embd, dropout=0.0)


def build(kind: str, args) -> torch.nn.Module:
    if kind == "corpus":
        return GPT(model_config(args))
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=args.vocab_size, n_positions=args.block_size, n_embd=args.n_embd, n_layer=args.n_layer,
                     n_head=args.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    cfg._attn_implementation = "sdpa"  # PyTorch's fused attention, as ours
    return GPT2LMHeadModel(cfg)


def non_embedding_params(model: torch.nn.Module, kind: str) -> int:
    n = sum(p.numel() for p in model.parameters())
    pos = model.wpe.weight.numel() if kind == "corpus" else model.transformer.wpe.weight.numel()
    return n - pos


def measure(kind: str, args, device: str, dtype) -> dict:
    torch.manual_seed(0)
    model = build(kind, args).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.startswith("cuda"))
    run = torch.compile(model) if args.compile else model
    x = torch.randint(0, args.vocab_size, (args.batch_size, args.block_size), device=device)
    y = torch.randint(0, args.vocab_size, (args.batch_size, args.block_size), device=device)

    def step():
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            if kind == "corpus":
                _, loss = run(x, y)
            else:
                logits = run(input_ids=x).logits
                loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    sync(device)
    runs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync(device)
        runs.append(time.perf_counter() - t)
    seconds = statistics.median(runs) / args.steps
    tokens = args.batch_size * args.block_size
    n = non_embedding_params(model, kind)
    per_token = flops_per_token(n, args.n_layer, args.n_embd, args.block_size)
    return {"params_M": n / 1e6, "tokens_per_s": tokens / seconds, "flops": per_token * tokens / seconds,
            "ms_per_step": seconds * 1000}


# --- loop mode: our training loop vs our plain-tensor loop equivalent to nanoGPT's train.py ---


def shakespeare_shards(text: Path, out: Path, vocab_size: int) -> Path:
    """tinyshakespeare with one document per paragraph (more document boundaries inside windows
    than any other cut: the loader's hardest case), a BPE tokenizer, shards split 90/10."""
    from corpus.tokenizer.encode import ShardsConfig, write_shards
    from corpus.tokenizer.train import TokenizerConfig, train_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    docs = out / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"shk-{i:05d}", "text": para}) + "\n"
                            for i, para in enumerate(text.read_text(encoding="utf-8").split("\n\n"))))
    train_tokenizer(docs, out / "tokenizer", TokenizerConfig(vocab_size=vocab_size))
    write_shards(docs, out / "tokenizer" / "tokenizer.model", out / "shards", ShardsConfig(val_fraction=0.1))
    return out / "shards"


class PlainLoop:
    """nanoGPT's ``train.py`` loop on plain tensors: one flat uint16 token array, ``get_batch``
    with ``torch.randint`` offsets and ``torch.stack`` of slices, the next batch fetched right
    after the forward pass, ``loss.item()`` every ``log_interval`` steps. The optimizer
    (``make_optimizer``: AdamW, decay on matrices only, fused on CUDA) and the lr schedule
    (``lr_at``) are ours, the same as nanoGPT's ``configure_optimizers`` and ``get_lr``."""

    def __init__(self, stream: np.ndarray, args, cfg, device: str):
        from corpus.trainer.train import make_optimizer

        self.stream, self.cfg, self.device = stream, cfg, device
        torch.manual_seed(cfg.seed)
        self.model = GPT(model_config(args)).to(device)
        self.optimizer = make_optimizer(self.model, cfg, device)
        # as nanoGPT: one context object, entered every step
        self.ctx = contextlib.nullcontext() if cfg.dtype == "float32" else torch.autocast(
            device_type=device.split(":")[0], dtype=getattr(torch, cfg.dtype))
        self.iter_num = 0
        self.x, self.y = self.get_batch()

    def get_batch(self):
        data, T, B = self.stream, self.cfg.block_size, self.cfg.batch_size
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy(data[i : i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + T].astype(np.int64)) for i in ix])
        if self.device.startswith("cuda"):
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def run(self, steps: int) -> None:
        from corpus.trainer.train import lr_at

        model, optimizer, cfg = self.model, self.optimizer, self.cfg
        for _ in range(steps):
            lr = lr_at(self.iter_num, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with self.ctx:
                _, loss = model(self.x, self.y)
                loss = loss / cfg.grad_accum
            self.x, self.y = self.get_batch()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if self.iter_num % cfg.log_interval == 0:
                self.last_log = f"iter {self.iter_num}: loss {loss.item() * cfg.grad_accum:.4f}"
            self.iter_num += 1
        sync(self.device)


def ms_per_call(fn, calls: int, device: str) -> float:
    sync(device)
    t = time.perf_counter()
    for i in range(calls):
        fn(i)
    sync(device)
    return (time.perf_counter() - t) / calls * 1e3


def step_phases(run, steps: int) -> dict[str, float]:
    """Milliseconds per step in each part of our step, timed apart (with a device sync after each
    part): our loader, forward, backward, clipping, optimizer step and zeroing."""
    from corpus.trainer.runtime import autocast

    cfg, device = run.cfg, run.device
    phases = dict.fromkeys(["loader", "forward", "backward", "clip", "optimizer"], 0.0)
    position = run.progress.position
    for _ in range(steps):
        marks = [time.perf_counter()]
        x, y = run.train_batches.get(position, cfg.batch_size, device)
        position += cfg.batch_size
        sync(device)
        marks.append(time.perf_counter())
        with autocast(device, run.dtype):
            _, loss = run.ddp(x, y)
        sync(device)
        marks.append(time.perf_counter())
        loss.backward()
        sync(device)
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        sync(device)
        marks.append(time.perf_counter())
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        sync(device)
        marks.append(time.perf_counter())
        for name, a, b in zip(phases, marks, marks[1:]):
            phases[name] += (b - a) * 1e3 / steps
    return phases


def bookkeeping_ms(run, calls: int) -> float:
    """Ms per step of what our loop does besides the parts above: set the lr, keep the loss on the
    device, and every ``log_interval`` steps read it back and format the log line."""
    from corpus.trainer.train import lr_at, mean_loss

    loss, lines = torch.zeros((), device=run.device), []

    def once(i: int) -> None:
        lr = lr_at(i, run.cfg)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        kept = loss.detach()
        if i % run.cfg.log_interval == 0:
            lines.append(f"train: step {i} loss {mean_loss(run, kept):.4f} lr {lr:.2e}")

    return ms_per_call(once, calls, run.device)


def loop_mode(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        compare_loops(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_loops(args, tmp: Path) -> None:
    from loguru import logger

    from corpus.trainer.config import TrainConfig
    from corpus.trainer.train import run_steps, setup

    shards = Path(args.shards) if args.shards else shakespeare_shards(Path(args.input), tmp, args.vocab_size)
    cfg = TrainConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, block_size=args.block_size,
                      batch_size=args.batch_size, dropout=0.0, learning_rate=1e-3, min_lr=1e-4, warmup_steps=100,
                      max_steps=10**9, eval_interval=10**9, log_interval=10, device=args.device, dtype=args.dtype,
                      compile=args.compile, threads=args.threads)
    run = setup(shards, tmp / "train", cfg)
    stream = run.train_batches.data.windows(np.array([0]), run.train_batches.data.total)[0].astype(np.uint16)
    plain = PlainLoop(stream, args, cfg, run.device)
    logger.disable("corpus")  # our loop still formats its log line every log_interval steps, as nanoGPT's does
    data = (f"shards {args.shards}" if args.shards else "tinyshakespeare, one document per paragraph") + \
        f", vocab {run.vocab_size}, {len(stream):,} train tokens"
    print(f"loop mode: OUR training loop (corpus.trainer.train setup + run_steps, on real shards) vs the reference, "
          f"OUR plain-tensor loop equivalent to nanoGPT's train.py (nanoGPT itself is not on PyPI)\n"
          f"data: {data}; device {run.device} ({torch.get_num_threads()} threads), {args.dtype}, {args.n_layer} "
          f"layers x {args.n_embd} wide, {args.n_head} heads, context {args.block_size}, batch {args.batch_size}, "
          f"dropout 0", flush=True)

    parts = []

    def ours(steps: int) -> None:
        run_steps(run, until=run.progress.step + steps)
        sync(run.device)

    runners = {"ours": ours, "plain": plain.run, "parts": lambda steps: parts.append(step_phases(run, steps))}
    for fn in runners.values():
        fn(args.warmup)
    parts.clear()
    rates = {"ours": [], "plain": []}
    tokens = args.steps * args.batch_size * args.block_size
    for r in range(args.repeats):  # rounds of each in turn, and each round starts with another
        for name in np.roll(list(runners), -r):
            t = time.perf_counter()
            runners[name](args.steps)
            if name in rates:
                rates[name].append(tokens / (time.perf_counter() - t))
    tok_s = {name: statistics.median(v) for name, v in rates.items()}
    step_ms = {name: args.batch_size * args.block_size / v * 1e3 for name, v in tok_s.items()}
    loader_ms = {
        "ours": ms_per_call(lambda i: run.train_batches.get(i * args.batch_size, args.batch_size, run.device), 500, run.device),
        "plain": ms_per_call(lambda i: plain.get_batch(), 500, run.device),
    }
    for name, v in rates.items():
        print(f"rounds, {name} (tokens/s): {', '.join(f'{x:,.0f}' for x in v)}")
    print(f"{'loop':<44}{'tokens/s':>10}{'ms/step':>10}{'loader ms':>11}{'loader share':>14}")
    labels = {"ours": "ours: corpus.trainer.train run_steps", "plain": "reference: plain nanoGPT-style loop (ours)"}
    for name, label in labels.items():
        print(f"{label:<44}{tok_s[name]:>10,.0f}{step_ms[name]:>10.2f}{loader_ms[name]:>11.3f}"
              f"{loader_ms[name] / step_ms[name]:>14.2%}")
    paired = statistics.median(a / b for a, b in zip(rates["ours"], rates["plain"]))
    print(f"ratio ours/plain: {tok_s['ours'] / tok_s['plain']:.3f}x of the medians, {paired:.3f}x the median of the "
          f"rounds' ratios ({args.repeats} rounds of {args.steps} steps each, in turn, after {args.warmup} warm-up steps)")
    phases = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    print("our step by part (ms, medians over the same rounds, each part timed apart): "
          + ", ".join(f"{k} {v:.3f}" for k, v in phases.items()) + f"; sum {sum(phases.values()):.2f}; "
          f"loop bookkeeping (lr, loss, log line) {bookkeeping_ms(run, 2000):.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    for name in MODEL_DEFAULTS:
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                        help=f"default {MODEL_DEFAULTS[name]}, with --loop {LOOP_DEFAULTS[name]}")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--tools", default="corpus,transformers")
    ap.add_argument("--loop", action="store_true", help="our training loop vs a plain nanoGPT-style loop")
    ap.add_argument("--input", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"),
                    help="--loop: the text to tokenize")
    ap.add_argument("--shards", default=None, help="--loop: existing shards to use instead")
    args = ap.parse_args()
    for name, value in (LOOP_DEFAULTS if args.loop else MODEL_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.loop:
        return loop_mode(args)
    dtype = getattr(torch, args.dtype)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak, how = peak_flops(args.device, dtype)
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else f'{torch.get_num_threads()} threads'}), "
          f"{args.dtype}, {args.n_layer} layers x {args.n_embd} wide, {args.n_head} heads, context {args.block_size}, "
          f"batch {args.batch_size}, vocab {args.vocab_size}; peak {peak / 1e12:.2f} TFLOP/s ({how})", flush=True)
    print(f"{'model':<14}{'params (M)':>11}{'tokens/s':>12}{'ms/step':>10}{'TFLOP/s':>10}{'MFU':>8}")
    for kind in args.tools.split(","):
        r = measure(kind, args, args.device, dtype)
        print(f"{kind:<14}{r['params_M']:>11.2f}{r['tokens_per_s']:>12,.0f}{r['ms_per_step']:>10.1f}"
              f"{r['flops'] / 1e12:>10.3f}{r['flops'] / peak:>8.1%}", flush=True)


if __name__ == "__main__":
    main()
