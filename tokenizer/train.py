"""Train a lossless sentencepiece BPE tokenizer on curated documents.

sentencepiece's defaults lose text: they normalise Unicode (NFKC), add a dummy space prefix,
collapse runs of spaces, and skip training lines longer than 4,192 bytes. Here, by default:
identity normalisation, no dummy prefix, whitespace kept, byte fallback (any byte sequence
encodes), digits split, long lines cut into chunks instead of skipped, printable ASCII always
in the vocabulary, and runs of newlines (``\\n`` or ``\\r\\n``) are pieces of their own, so
documents keep their line structure cheaply.

Large inputs are sampled while streaming: every line gets a seeded random priority and only the
``sample_bytes`` worth of lines with the lowest priorities is kept (a bottom-k reservoir), so
memory is bounded by the sample, not the input. Documents whose id hashes into the held-out
slice are never trained on; they measure bytes per token and check the round trip.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import random
import string
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from datatrove.data import Document
from loguru import logger

from corpus.core.io import sha256_file, write_json
from corpus.readers import documents
from corpus.tokenizer.sp import Tokenizer


@dataclass
class TokenizerConfig:
    vocab_size: int = 8000
    character_coverage: float = 0.999  # the share of character occurrences that get a piece of their own
    sample_bytes: int = 500_000_000
    heldout_fraction: float = 0.01
    heldout_max_bytes: int = 5_000_000
    max_line_bytes: int = 16_384
    num_threads: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.vocab_size < 300:
            raise ValueError("vocab_size must be at least 300 (256 byte pieces + specials + merges)")
        if not 0 <= self.heldout_fraction < 0.5:
            raise ValueError("heldout_fraction must be in [0, 0.5)")


def hash_fraction(key: str, salt: str = "") -> float:
    """A stable number in [0, 1) for a document id: splits never depend on order or process."""
    h = hashlib.blake2b((salt + key).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def _chunks(line: str, max_bytes: int) -> Iterator[str]:
    data = line.encode("utf-8")
    if len(data) <= max_bytes:
        yield line
        return
    start = 0
    while start < len(data):
        end = min(len(data), start + max_bytes)
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # do not cut a UTF-8 character
            end -= 1
        yield data[start:end].decode("utf-8")
        start = end


def sample_lines(docs: Iterator[Document], cfg: TokenizerConfig) -> tuple[list[str], list[str], dict]:
    """Bottom-k reservoir of training lines by byte budget, plus the held-out documents."""
    rng = random.Random(cfg.seed)
    heap: list[tuple[float, int, str]] = []  # (-priority, tiebreak, line): max-heap on priority
    kept_bytes = 0
    heldout, heldout_bytes = [], 0
    stats = {"documents": 0, "input_bytes": 0, "heldout_documents": 0}
    counter = 0
    for doc in docs:
        text = doc.text
        if not text:
            continue
        stats["documents"] += 1
        n = len(text.encode("utf-8"))
        stats["input_bytes"] += n
        if hash_fraction(str(doc.id), "heldout") < cfg.heldout_fraction and heldout_bytes < cfg.heldout_max_bytes:
            heldout.append(text)
            heldout_bytes += n
            continue
        for line in text.split("\n"):
            if not line:
                continue
            for piece in _chunks(line, cfg.max_line_bytes):
                priority = rng.random()
                size = len(piece.encode("utf-8"))
                if kept_bytes + size <= cfg.sample_bytes:
                    heapq.heappush(heap, (-priority, counter, piece))
                    kept_bytes += size
                elif heap and priority < -heap[0][0]:
                    heapq.heappush(heap, (-priority, counter, piece))
                    kept_bytes += size
                    while kept_bytes > cfg.sample_bytes and heap:
                        _, _, old = heapq.heappop(heap)
                        kept_bytes -= len(old.encode("utf-8"))
                counter += 1
    stats["heldout_documents"] = len(heldout)
    stats["heldout_bytes"] = heldout_bytes
    stats["sample_bytes"] = kept_bytes
    lines = [line for _, c, line in sorted(heap, key=lambda t: t[1])]  # input order, reproducible
    stats["sample_lines"] = len(lines)
    return lines, heldout, stats


def trainer_options(cfg: TokenizerConfig) -> dict:
    return dict(
        model_type="bpe",
        vocab_size=cfg.vocab_size,
        character_coverage=cfg.character_coverage,
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        split_digits=True,
        split_by_unicode_script=False,  # lets "word," and "'s" merge: about 3 % fewer tokens
        allow_whitespace_only_pieces=True,
        max_sentence_length=cfg.max_line_bytes + 16,
        # newline runs (Unix and Windows), one token each
        user_defined_symbols=["\n", "\n\n", "\n\n\n", "\n\n\n\n", "\r\n", "\r\n\r\n", "\r\n\r\n\r\n"],
        # printable ASCII and tabs are pieces whatever their frequency: common digits and
        # punctuation never fall back to bytes (character_coverage alone drops rare ones)
        required_chars="".join(c for c in string.printable if c not in " \n\x0b\x0c"),
        input_sentence_size=0,
        shuffle_input_sentence=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=cfg.num_threads,
        minloglevel=2,
    )


def train_tokenizer(inputs, out_dir: str | Path, cfg: TokenizerConfig) -> dict:
    """Train on documents from ``inputs`` (a folder, file or glob, or a list of them); write
    ``tokenizer.model``, ``tokenizer.vocab`` and ``card.json`` to ``out_dir``. Skips the work when
    ``card.json`` already describes a tokenizer trained with the same settings."""
    import sentencepiece as spm

    out_dir = Path(out_dir)
    card_path = out_dir / "card.json"
    settings = asdict(cfg)
    if card_path.exists():
        card = json.loads(card_path.read_text())
        if card.get("settings") == settings and (out_dir / "tokenizer.model").exists():
            logger.info(f"tokenizer: {out_dir} already trained with these settings, skipping")
            return card
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    t0 = time.time()
    lines, heldout, stats = sample_lines(documents(inputs), cfg)
    if not lines:
        raise ValueError(f"tokenizer: no text to train on in {[str(i) for i in inputs]}")
    logger.info(
        f"tokenizer: training BPE, vocab {cfg.vocab_size}, on {stats['sample_bytes'] / 1e6:.1f} MB "
        f"({stats['sample_lines']} lines) sampled from {stats['input_bytes'] / 1e6:.1f} MB"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / f".tokenizer.tmp-{os.getpid()}"
    options = trainer_options(cfg)
    while True:
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(prefix), **options)
            break
        except RuntimeError as e:
            # many scripts, small vocabulary: the characters at this coverage do not fit. Cover
            # fewer as single pieces (byte fallback still encodes the rest, losslessly).
            # (sentencepiece accepts coverages from 0.98 up)
            if "smaller than required_chars" in str(e) and options["character_coverage"] > 0.98:
                options["character_coverage"] = max(0.98, round(1 - (1 - options["character_coverage"]) * 3, 6))
                logger.warning(f"tokenizer: vocab_size {cfg.vocab_size} cannot hold every character at this "
                               f"coverage; retrying with character_coverage {options['character_coverage']}")
                continue
            hint = " Raise vocab_size: the text has more distinct characters than it holds." \
                if "smaller than required_chars" in str(e) else ""
            raise ValueError(f"tokenizer: sentencepiece failed: {e}.{hint}") from None
    os.replace(f"{prefix}.vocab", out_dir / "tokenizer.vocab")
    os.replace(f"{prefix}.model", out_dir / "tokenizer.model")
    train_seconds = time.time() - t0

    tok = Tokenizer(out_dir / "tokenizer.model")
    held_tokens = held_bytes = roundtrip_fail = 0
    for text, ids in zip(heldout, tok.encode_batch(heldout)):
        held_tokens += len(ids)
        held_bytes += len(text.encode("utf-8"))
        roundtrip_fail += tok.decode(ids) != text
    card = {
        "settings": settings,
        "trainer_options": {k: v for k, v in options.items() if k != "num_threads"},
        "sentencepiece_version": spm.__version__,
        "vocab_size": tok.vocab_size,
        "eos_id": tok.eos_id,
        "input": [str(i) for i in inputs],
        **stats,
        "heldout_bytes_per_token": round(held_bytes / held_tokens, 4) if held_tokens else None,
        "heldout_roundtrip_failures": roundtrip_fail,
        "model_sha256": sha256_file(out_dir / "tokenizer.model"),
        "seconds": round(train_seconds, 2),
    }
    write_json(card_path, card)
    logger.info(
        f"tokenizer: done in {train_seconds:.1f}s; held-out bytes/token {card['heldout_bytes_per_token']}, "
        f"round-trip failures {roundtrip_fail}/{len(heldout)}"
    )
    return card
