"""Tokenizer and shard benchmark: corpus's sentencepiece BPE vs Hugging Face ``tokenizers`` BPE.

    python bench/tokenizer.py [--docs runs/demo/docs | --shared] [--vocab-size 8000] [--threads 2]

One run, on the same documents (by default the curated documents of ``make demo``: Shakespeare
and Milton; with ``--shared``, a multilingual mix from ../shared/data: the main text of the
real WARC pages, the Universal Declaration of Human Rights in 443 languages, the Readability
test pages' main text and tinyshakespeare) and the same vocabulary size:

- training time and peak memory (RSS of a fresh process per trainer) of ``corpus tokenizer
  train`` (sentencepiece BPE, lossless settings) and of HF ``tokenizers`` BPE (byte-level, as
  GPT-2; ``BpeTrainer``);
- bytes per token of both on held-out documents (5 % of ids, never trained on), and whether
  decode(encode(text)) gives the text back;
- encode throughput of both (MB/s, ``encode_batch`` on ``--threads`` threads);
- tokenize-to-shards throughput (``write_shards``: encode, build Arrow batches, write, hash)
  against sentencepiece's raw encode of the same documents;
- read throughput of the shards (memory-mapped, zero copy) against a raw uint16 ``np.memmap``
  of the same tokens: a full sequential pass, and random training windows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_docs(folder: Path) -> tuple[list[dict], list[dict]]:
    from corpus.readers import documents
    from corpus.tokenizer.train import hash_fraction

    docs = [{"id": d.id, "text": d.text, "metadata": d.metadata} for d in documents([str(folder)]) if d.text]
    heldout = [d for d in docs if hash_fraction(str(d["id"]), "bench") < 0.05]
    train = [d for d in docs if hash_fraction(str(d["id"]), "bench") >= 0.05]
    return train, heldout


def shared_docs(out: Path) -> Path:
    """A multilingual document set from ../shared/data, as JSONL."""
    import csv

    from corpus.extract import TrafilaturaExtractor
    from corpus.readers import WarcReader

    data = ROOT.parent / "shared" / "data"
    rows = []
    warcs = [str(data / "warc" / "resiliparse" / "*.warc.gz"), str(data / "warc" / "dolma" / "*.warc.gz")]
    rows += [{"id": d.id, "text": d.text} for d in TrafilaturaExtractor().run(WarcReader(warcs).run())]
    by_lang = {}
    with open(data / "langid-udhr" / "udhr_paragraphs.tsv", encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            by_lang.setdefault(r["code"], []).append(r["text"])
    rows += [{"id": f"udhr-{code}", "text": "\n\n".join(paras)} for code, paras in by_lang.items()]
    for page in sorted((data / "extraction-dev" / "readability-pages").glob("*/expected.html")):
        import lxml.html

        text = lxml.html.fromstring(page.read_text(encoding="utf-8", errors="replace") or "<p/>").text_content().strip()
        if text:
            rows.append({"id": f"readability-{page.parent.name}", "text": text})
    shk = (data / "tinyshakespeare" / "input.txt").read_text()
    rows += [{"id": f"shk-{i}", "text": shk[i : i + 4000]} for i in range(0, len(shk), 4000)]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "docs.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return out


def _train_corpus(train_dir, out, vocab, threads, conn):
    from corpus.tokenizer.train import TokenizerConfig, train_tokenizer

    t = time.perf_counter()
    train_tokenizer(train_dir, out, TokenizerConfig(vocab_size=vocab, heldout_fraction=0.0, num_threads=threads))
    conn.send((time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _train_hf(train_dir, out, vocab, threads, conn):
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from corpus.readers import documents

    t = time.perf_counter()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator((d.text for d in documents([str(train_dir)])), trainer=trainer)
    tok.save(str(Path(out) / "hf.json"))
    conn.send((time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def paired_medians(a, b, repeat: int = 7) -> tuple[float, float]:
    """Median times of two functions measured alternately (a, b, a, b, ...), so that drift in
    the machine's speed falls on both alike."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, times in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return float(np.median(ta)), float(np.median(tb))


def median_time(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", default=str(ROOT / "runs" / "demo" / "docs"))
    ap.add_argument("--shared", action="store_true", help="a multilingual mix from ../shared/data instead of --docs")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)

    from tokenizers import Tokenizer as HFTokenizer

    from bench.common import in_child

    from corpus.core.shards import read_manifest, split_tokens
    from corpus.tokenizer.encode import ShardsConfig, write_shards
    from corpus.tokenizer.sp import Tokenizer
    from corpus.trainer.data import Batches, PackedTokens

    if args.shared:
        args.docs = str(shared_docs(Path(tempfile.mkdtemp()) / "shared"))
    if not Path(args.docs).exists():
        sys.exit(f"{args.docs} does not exist: run `make demo` first, or give --docs")
    train, heldout = load_docs(Path(args.docs))
    mb = sum(len(d["text"].encode()) for d in train) / 1e6
    print(f"{args.docs}: {len(train)} training documents ({mb:.1f} MB), {len(heldout)} held out "
          f"({sum(len(d['text'].encode()) for d in heldout) / 1e6:.2f} MB); vocab {args.vocab_size}; "
          f"{args.threads} threads", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "train").mkdir()
        with open(tmp / "train" / "docs.jsonl", "w") as f:
            for d in train:
                f.write(json.dumps({"id": d["id"], "text": d["text"], "metadata": d.get("metadata", {})}) + "\n")
        (tmp / "ours").mkdir()
        (tmp / "hf").mkdir()
        t_ours, m_ours = in_child(_train_corpus, str(tmp / "train"), str(tmp / "ours"), args.vocab_size, args.threads)
        t_hf, m_hf = in_child(_train_hf, str(tmp / "train"), str(tmp / "hf"), args.vocab_size, args.threads)

        ours = Tokenizer(tmp / "ours" / "tokenizer.model")
        hf = HFTokenizer.from_file(str(tmp / "hf" / "hf.json"))
        held = [d["text"] for d in heldout]
        held_bytes = sum(len(t.encode()) for t in held)
        ours_ids = ours.encode_batch(held, num_threads=args.threads)
        hf_enc = hf.encode_batch(held)
        bpt_ours = held_bytes / sum(map(len, ours_ids))
        bpt_hf = held_bytes / sum(len(e.ids) for e in hf_enc)
        rt_ours = all(ours.decode(i) == t for i, t in zip(ours_ids, held))
        rt_hf = all(hf.decode(e.ids, skip_special_tokens=False) == t for e, t in zip(hf_enc, held))

        texts = [d["text"] for d in train]
        enc_ours = median_time(lambda: ours.encode_batch(texts, num_threads=args.threads))
        enc_hf = median_time(lambda: hf.encode_batch(texts))
        raw_sp = median_time(lambda: ours.sp.encode(texts, num_threads=args.threads))

        def to_shards():
            write_shards(tmp / "train", tmp / "ours" / "tokenizer.model", tmp / "shards",
                         ShardsConfig(val_fraction=0.01, tasks=1, num_threads=args.threads))
            (tmp / "shards" / "manifest.json").unlink()

        shards_t = median_time(to_shards)
        to_shards()
        write_shards(tmp / "train", tmp / "ours" / "tokenizer.model", tmp / "shards",
                     ShardsConfig(val_fraction=0.01, tasks=1, num_threads=args.threads))

        # reads: a larger set of shards (the documents 16 times), and the same tokens as a flat uint16 file
        (tmp / "big").mkdir()
        with open(tmp / "big" / "docs.jsonl", "w") as f:
            for k in range(16):
                for d in train:
                    f.write(json.dumps({"id": f"{k}-{d['id']}", "text": d["text"]}) + "\n")
        write_shards(tmp / "big", tmp / "ours" / "tokenizer.model", tmp / "bigshards",
                     ShardsConfig(val_fraction=0.01, tasks=1, num_threads=args.threads, shard_tokens=20_000_000))
        flat = np.concatenate([v for v, _ in split_tokens(tmp / "bigshards", "train")])
        flat.astype(np.uint16).tofile(tmp / "tokens.u16")
        n_tokens = len(flat)
        del flat

        def read_shards():
            return sum(int(v.sum(dtype=np.uint64)) for v, _ in split_tokens(tmp / "bigshards", "train"))

        def read_memmap():
            return int(np.memmap(tmp / "tokens.u16", dtype=np.uint16, mode="r").sum(dtype=np.uint64))

        assert read_shards() == read_memmap()
        seq_shards, seq_memmap = paired_medians(read_shards, read_memmap, 9)
        eos = read_manifest(tmp / "bigshards")["tokenizer"]["eos_id"]
        batches = Batches(PackedTokens(tmp / "bigshards", "train", eos), 256, seed=0)
        mm = np.memmap(tmp / "tokens.u16", dtype=np.uint16, mode="r")
        rng = np.random.default_rng(0)
        starts = rng.integers(0, len(mm) - 257, size=64 * 200)

        def windows_shards():
            for k in range(200):
                batches.get(k * 64, 64)

        def windows_memmap():
            for k in range(200):
                np.stack([mm[s : s + 257].astype(np.int64) for s in starts[k * 64 : (k + 1) * 64]])

        win_shards, win_memmap = paired_medians(windows_shards, windows_memmap, 3)

    print()
    print(f"{'':34}{'corpus (sentencepiece)':>24}{'HF tokenizers BPE':>20}")
    print(f"{'training time (s)':34}{t_ours:>24.1f}{t_hf:>20.1f}")
    print(f"{'training peak RSS (MB)':34}{m_ours:>24.0f}{m_hf:>20.0f}")
    print(f"{'held-out bytes per token':34}{bpt_ours:>24.3f}{bpt_hf:>20.3f}")
    print(f"{'held-out round trip exact':34}{str(rt_ours):>24}{str(rt_hf):>20}")
    print(f"{'encode (MB/s)':34}{mb / enc_ours:>24.1f}{mb / enc_hf:>20.1f}")
    print()
    print(f"tokenize to shards: {mb / shards_t:.1f} MB/s; sentencepiece raw encode {mb / raw_sp:.1f} MB/s "
          f"(ratio {raw_sp / shards_t:.2f})")
    print(f"sequential read of {n_tokens:,} tokens: shards {n_tokens / seq_shards / 1e6:,.0f} M tokens/s, "
          f"raw uint16 memmap {n_tokens / seq_memmap / 1e6:,.0f} M tokens/s (ratio {seq_memmap / seq_shards:.2f})")
    print(f"random training windows (64 x 257 tokens, packed with eos): shards {200 * 64 / win_shards:,.0f} windows/s, "
          f"raw memmap slices {200 * 64 / win_memmap:,.0f} windows/s (ratio {win_memmap / win_shards:.2f})")


if __name__ == "__main__":
    main()
