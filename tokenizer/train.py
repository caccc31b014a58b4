"""Train a lossless sentencepiece BPE tokenizer on curated documents.

sentencepiece's defaults lose text: they normalise Unicode (NFKC), add a dummy space prefix,
collapse runs of spaces, and skip training lines longer than 4,192 bytes. Here, by default:
identity normalisation, no dummy prefix, whitespace kept, byte fallback (any byte sequence
encodes), digits split, long lines cut into chunks instead of skipped, printable ASCII always
in the vocabulary, and runs of newlines (``\\n`` or ``\\r\\n``) are pieces of their own, so
documents keep their line structure cheaply.

The training text is a sample of whole documents, written to a file that sentencepiece reads:
each document's priority is a hash of its id, and the documents with the lowest priorities that
fit in ``sample_bytes`` are taken (a bottom-k sample: the same documents whatever the order of
the input, the number of tasks that wrote it, or the machine). A first pass keeps only each
document's priority and size (no text: a few dozen bytes per sampled document); when the input
is larger than the sample a second pass writes the chosen documents. So this process never
holds the sample in Python; sentencepiece's trainer does, and its memory grows with
``sample_bytes`` (the setting that bounds this stage), not with the corpus. Documents whose id
hashes into the held-out slice are never trained on; they measure bytes per token and check the
round trip.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import os
import string
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from loguru import logger

from corpus.core.chat import CHAT_TOKENS
from corpus.core.io import TMP_MARK, atomic_path, is_remote, local_copy, run_path, sha256_file, write_json
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
MIN_VOCAB_SIZE = len(REQUIRED_CHARS) + 256 + len(NEWLINE_PIECES) + len(CHAT_TOKENS) + 3 + 1


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


def _write_lines(f, text: str, cfg: TokenizerConfig) -> tuple[int, int]:
    """The training lines of one document (no empty line; long ones cut) to ``f``: (lines, bytes)."""
    lines = size = 0
    for line in text.split("\n"):
        for piece in _chunks(line, cfg.max_line_bytes) if line else ():
            data = piece.encode("utf-8")
            f.write(data + b"\n")
            lines += 1
            size += len(data)
    return lines, size


def _cut_tail(path: Path, want: int, max_line: int) -> tuple[str, int, int]:
    """Remove the last lines of the file, at least ``want`` bytes of them, but never its first
    line (lines are at most ``max_line`` bytes): (their text, how many lines, their bytes
    without newlines)."""
    with open(path, "rb+") as f:
        size = f.seek(0, 2)
        pos = max(0, size - want - max_line - 2)  # a line start lies between pos and size - want
        f.seek(pos)
        block = f.read()
        cut = block.rfind(b"\n", 0, max(0, len(block) - want)) + 1
        if pos + cut == 0:
            cut = block.find(b"\n") + 1  # the first line stays for training
        tail = block[cut:]
        f.truncate(pos + cut)
    lines = tail.count(b"\n")
    return tail.decode("utf-8").rstrip("\n"), lines, len(tail) - lines


def _scored(inputs, cfg: TokenizerConfig) -> Iterator[tuple[str, int, float | None]]:
    """Each document's text, UTF-8 size and sample priority (a hash of its id); priority None for
    a held-out document: one whose id hashes into the held-out slice, while the held-out text is
    under ``heldout_max_bytes`` (in input order: the same documents on every pass)."""
    held = 0
    for doc in documents(inputs):
        if not doc.text:
            continue
        n = len(doc.text.encode("utf-8"))
        if hash_fraction(str(doc.id), "heldout") < cfg.heldout_fraction and held < cfg.heldout_max_bytes:
            held += n
            yield doc.text, n, None
        else:
            yield doc.text, n, hash_fraction(str(doc.id), f"sample{cfg.seed}")


def sample_to_file(inputs, path: Path, cfg: TokenizerConfig) -> tuple[list[str], dict]:
    """Write the training sample to ``path`` (one line per sentencepiece sentence) and return the
    held-out documents and the figures of the sample."""
    heap: list[tuple[float, int]] = []  # (-priority, bytes) of the sampled documents: a max-heap
    cutoff = float("inf")
    kept_bytes = heldout_bytes = 0
    heldout: list[str] = []
    stats = {"documents": 0, "input_bytes": 0, "heldout_documents": 0}
    written = {"lines": 0, "bytes": 0}

    def write(f, text: str) -> None:
        lines, size = _write_lines(f, text, cfg)
        written["lines"] += lines
        written["bytes"] += size

    whole = True  # while the whole input fits in the sample, pass 1 writes it too
    with open(path, "wb") as f:
        for text, n, priority in _scored(inputs, cfg):
            stats["documents"] += 1
            stats["input_bytes"] += n
            if priority is None:
                heldout.append(text)
                heldout_bytes += n
                continue
            # the sample: every document whose priority is below the cutoff, the longest run of
            # the priority order within sample_bytes (whatever order the documents come in)
            if priority >= cutoff:
                continue
            heapq.heappush(heap, (-priority, n))
            kept_bytes += n
            while kept_bytes > cfg.sample_bytes:
                neg, size = heapq.heappop(heap)
                kept_bytes -= size
                cutoff = min(cutoff, -neg)
                whole = False  # a document is left out: pass 2 writes the sample
            if whole:
                write(f, text)
    if not whole:  # pass 2: the documents below the cutoff
        written.update(lines=0, bytes=0)
        with open(path, "wb") as f:
            for text, _, priority in _scored(inputs, cfg):
                if priority is not None and priority < cutoff:
                    write(f, text)
    stats["heldout_split"] = "document"
    if not heldout and cfg.heldout_fraction > 0 and written["lines"] > 1:
        # too few documents for any to hash into the held-out slice (one long text, say): the
        # last lines of the sample, heldout_fraction of its bytes, are held out instead
        tail, lines, size = _cut_tail(path, max(1, int(written["bytes"] * cfg.heldout_fraction)), cfg.max_line_bytes)
        heldout = [tail]
        heldout_bytes = len(tail.encode("utf-8"))
        written["lines"] -= lines
        written["bytes"] -= size
        stats["heldout_split"] = "position"
    stats["heldout_documents"] = len(heldout)
    stats["heldout_bytes"] = heldout_bytes
    stats["sample_bytes"] = written["bytes"]
    stats["sample_lines"] = written["lines"]
    return heldout, stats


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
        # the chat template's control tokens are always reserved, so a base model is fine-tuned on
        # conversations without resizing its vocabulary (Tokenizer.encode never emits them for text)
        user_defined_symbols=NEWLINE_PIECES + CHAT_TOKENS,
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


def _read_lines(path: Path) -> Iterator[str]:
    """The sample's lines, one at a time (given as an iterator, not a file name, so that the model
    stores no path: the same input and settings give the same bytes wherever they ran)."""
    with open(path, "rb") as f:
        for line in f:
            yield line[:-1].decode("utf-8")


def _train(sample: Path, cfg: TokenizerConfig):
    """sentencepiece's BPE trainer on the sample file: (the model in memory, the options used)."""
    import sentencepiece as spm

    options = trainer_options(cfg)
    while True:
        try:
            # into memory, not to a model_prefix: the model then stores no file name, and the same
            # input and settings give the same bytes (and sha256) on every run
            model = io.BytesIO()
            spm.SentencePieceTrainer.train(sentence_iterator=_read_lines(sample), model_writer=model, **options)
            return model, options
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


def train_tokenizer(inputs, out_dir: str | Path, cfg: TokenizerConfig) -> dict:
    """Train on documents from ``inputs`` (a folder, file or glob, or a list of them); write
    ``tokenizer.model``, ``tokenizer.vocab`` and ``card.json`` to ``out_dir``. Skips the work when
    ``card.json`` already describes a tokenizer trained with the same settings."""
    import sentencepiece as spm

    out_dir = run_path(out_dir)
    card_path = out_dir / "card.json"
    settings = asdict(cfg)
    if card_path.exists():
        card = json.loads(card_path.read_text())
        if card.get("settings") == settings and (out_dir / "tokenizer.model").exists():
            logger.info(f"tokenizer: {out_dir} already trained with these settings, skipping")
            return card
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    t0 = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    # the sample, next to the tokenizer (a stale one is removed with the run's temporaries), or in a
    # local temporary folder when the run folder is on object storage
    scratch = tempfile.mkdtemp(prefix="corpus-tokenizer-") if is_remote(out_dir) else None
    sample = Path(scratch or out_dir) / f".sample.txt{TMP_MARK}{os.getpid()}"
    try:
        heldout, stats = sample_to_file(inputs, sample, cfg)
        if not stats["sample_lines"]:
            raise ValueError(f"tokenizer: no text to train on in {[str(i) for i in inputs]}")
        logger.info(
            f"tokenizer: training BPE, vocab {cfg.vocab_size}, on {stats['sample_bytes'] / 1e6:.1f} MB "
            f"({stats['sample_lines']} lines) sampled from {stats['input_bytes'] / 1e6:.1f} MB"
        )
        model, options = _train(sample, cfg)
    finally:
        sample.unlink(missing_ok=True)
        if scratch:
            os.rmdir(scratch)
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

    with local_copy(out_dir / "tokenizer.model") as local:
        tok = Tokenizer(local)
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
