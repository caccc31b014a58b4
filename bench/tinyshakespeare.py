"""Validation bits per byte on tinyshakespeare after a fixed budget, nanoGPT's CPU recipe.

    python bench/tinyshakespeare.py [--vocab-size 1024] [--max-steps 2000]

nanoGPT's character-level baseline trains 4 layers of 128 wide, context 64, batch 12, for 2,000
iterations at learning rate 1e-3 (its README's CPU configuration) and reaches a validation loss
of about 1.88 nats per character, 2.71 bits per byte. This runs the same model size, context,
batch, steps and learning rate with corpus: the text is cut into documents of 20 paragraphs,
a BPE tokenizer is trained (``--vocab-size``), shards split 90/10 by document id, and
``corpus train`` reports validation bits per byte (comparable across tokenizers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"))
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp())
    paras = Path(args.input).read_text(encoding="utf-8").split("\n\n")
    docs = out / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    with open(docs / "docs.jsonl", "w") as f:
        for i in range(0, len(paras), 20):
            f.write(json.dumps({"id": f"shk-{i // 20:04d}", "text": "\n\n".join(paras[i : i + 20])}) + "\n")
    from corpus.tokenizer.encode import ShardsConfig, write_shards
    from corpus.tokenizer.train import TokenizerConfig, train_tokenizer

    train_tokenizer(docs, out / "tokenizer", TokenizerConfig(vocab_size=args.vocab_size, heldout_fraction=0.0))
    write_shards(docs, out / "tokenizer" / "tokenizer.model", out / "shards", ShardsConfig(val_fraction=0.1))
    sets = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_steps=args.max_steps,
                learning_rate=1e-3, min_lr=1e-4, warmup_steps=100, eval_interval=250, eval_batches=50, dropout=0.0)
    t = time.time()
    r = subprocess.run([sys.executable, "-m", "corpus.cli", "train", "--shards", str(out / "shards"), "--output",
                        str(out / "train"), *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]], cwd=ROOT)
    if r.returncode:
        sys.exit(r.returncode)
    result = json.loads((out / "train" / "result.json").read_text())
    print(f"\ntinyshakespeare, vocab {args.vocab_size}, {args.max_steps} steps of 12 x 64 tokens, "
          f"{time.time() - t:.0f}s: val loss {result['final_val_loss']} nats/token, "
          f"val {result['final_val_bpb']} bits/byte (nanoGPT char-level CPU recipe: ~2.71 bits/byte)")


if __name__ == "__main__":
    main()
