"""Training throughput: corpus's GPT vs Hugging Face ``transformers`` GPT-2 (``GPT2LMHeadModel``).

    python bench/train.py                                   # CPU, a small model
    python bench/train.py --device cuda --dtype bfloat16 --n-layer 12 --n-head 12 --n-embd 768 \\
        --block-size 1024 --batch-size 16 --vocab-size 50304 --compile      # GPT-2 124M on a GPU

Both models get the same size (layers, heads, width, vocabulary, context), the same batch of
random token ids, AdamW, and the same number of timed training steps (forward, backward,
optimizer step) after warm-up steps; each measurement is the median of ``--repeats`` runs.

MFU = achieved FLOP/s / peak FLOP/s, as the trainer logs it (``trainer/mfu.py``): nanoGPT's
count of 6N + 12·L·T·d FLOPs per token, and the datasheet peak for known GPUs in bf16, else the
FLOP/s of a large matrix product measured on this machine in the same precision.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.mfu import flops_per_token, peak_flops, sync  # noqa: E402

def build(kind: str, args) -> torch.nn.Module:
    if kind == "corpus":
        from trainer.model import GPT

        return GPT(args.vocab_size, args.block_size, args.n_layer, args.n_head, args.n_embd, 0.0)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--tools", default="corpus,transformers")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
