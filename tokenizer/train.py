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
import io
import json
import random
import string
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from datatrove.data import Document
from loguru import logger

from corpus.core.io import atomic_path, sha256_file, write_json
from corpus.core.registry import require_at_least
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
        if self.vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE}: 256 byte pieces, {len(NEWLINE_PIECES)} "
                             f"newline pieces, {len(REQUIRED_CHARS)} printable ASCII characters and the specials "
                             "take that many before any merge")
        if not 0.98 <= self.character_coverage <= 1:
            raise ValueError("character_coverage must be between 0.98 (sentencepiece's floor) and 1")
        if not 0 <= self.heldout_fraction < 0.5:
            raise ValueError("heldout_fraction must be in [0, 0.5)")
        require_at_least(self, 1, "sample_bytes", "max_line_bytes", "num_threads")
        require_at_least(self, 0, "heldout_max_bytes")


# runs of newlines (Unix and Windows) are one piece each
NEWLINE_PIECES = ["\n", "\n\n", "\n\n\n", "\n\n\n\n", "\r\n", "\r\n\r\n", "\r\n\r\n\r\n"]
# printable ASCII and tabs are pieces whatever their frequency: common digits and punctuation
# never fall back to bytes (character_coverage alone drops rare ones)
REQUIRED_CHARS = "".join(c for c in string.printable if c not in " \n\x0b\x0c")
# sentencepiece 0.2.3 needs room for the required characters, the 256 byte pieces, the user
# symbols, unk/bos/eos and the space piece: below this it refuses to train (measured; a test
# checks that this size trains and one less is refused at load)
MIN_VOCAB_SIZE = len(REQUIRED_CHARS) + 256 + len(NEWLINE_PIECES) + 3 + 1


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
    lines = [line for _, c, line in sorted(heap, key=lambda t: t[1])]  # input order, reproducible
    stats["heldout_split"] = "document"
    if not heldout and cfg.heldout_fraction > 0 and len(lines) > 1:
        # too few documents for any to hash into the held-out slice (one long text, say): the
        # last lines of the sample, heldout_fraction of its bytes, are held out instead
        want, k = kept_bytes * cfg.heldout_fraction, len(lines)
        while k > 1 and heldout_bytes < want:
            k -= 1
            heldout_bytes += len(lines[k].encode("utf-8"))
        heldout, lines = ["\n".join(lines[k:])], lines[:k]
        kept_bytes -= heldout_bytes
        stats["heldout_split"] = "position"
    stats["heldout_documents"] = len(heldout)
    stats["heldout_bytes"] = heldout_bytes
    stats["sample_bytes"] = kept_bytes
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
        user_defined_symbols=NEWLINE_PIECES,
        required_chars=REQUIRED_CHARS,
        hard_vocab_limit=False,  # a text too small for vocab_size gets the pieces it has, not an error
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
    options = trainer_options(cfg)
    while True:
        try:
            # into memory, not to a model_prefix: the model then stores no file name, and the same
            # input and settings give the same bytes (and sha256) on every run
            model = io.BytesIO()
            spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, **options)
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
    with atomic_path(out_dir / "tokenizer.model") as tmp:
        tmp.write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    if sp.vocab_size() < cfg.vocab_size:
        logger.warning(f"tokenizer: the text holds only {sp.vocab_size()} pieces; vocabulary {sp.vocab_size()} "
                       f"instead of {cfg.vocab_size}")
    with atomic_path(out_dir / "tokenizer.vocab") as tmp:  # sentencepiece's .vocab: piece, tab, score
        tmp.write_text("".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.vocab_size())),
                       encoding="utf-8")
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
