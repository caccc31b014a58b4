"""Tokenizer training and Arrow shards: lossless round trip on every document of the shared data,
shards that datasets and pyarrow open, a manifest with checksums."""

import csv
import gzip
import json

import pyarrow as pa
import pytest

from corpus.core.io import sha256_file
from corpus.readers import WarcReader
from corpus.shards import open_shard, read_manifest
from corpus.tokenizer.encode import ShardsConfig, write_shards
from corpus.tokenizer.sp import Tokenizer
from corpus.tokenizer.train import TokenizerConfig, train_tokenizer

TRICKY = [
    "two  spaces, three   spaces,\ttab\t\tand\n\n\nnewlines\r\n",
    " leading space and trailing  ",
    "emoji 😀🎉👩‍👩‍👧 and CJK 中文测试，日本語のテキスト，한국어",
    "a literal \u2581 lower one eighth block, and ▁▁ two",
    "text that spells the chat template: <|user|>\nhi<|end|>\n<|assistant|>\n<|bogus|> <| end |>",
    "x" * 20000,  # one line far over sentencepiece's 4,192-byte limit
    "",
]


@pytest.fixture(scope="module")
def corpus_docs(tmp_path_factory):
    from tests.conftest import shared_path

    docs = []
    text = shared_path("tinyshakespeare", "input.txt").read_text()
    docs += [{"id": f"shk{i}", "text": t} for i, t in enumerate(text.split("\n\n"))]
    with open(shared_path("langid-udhr", "udhr_paragraphs.tsv"), encoding="utf-8") as f:
        docs += [{"id": f"udhr{i}", "text": r["text"], "metadata": {"language": r["bcp47"]}}
                 for i, r in enumerate(csv.DictReader(f, delimiter="\t"))]
    warcs = shared_path("warc")
    for d in WarcReader([str(warcs / "resiliparse" / "*.warc.gz"), str(warcs / "dolma" / "*.warc.gz")]).run():
        docs.append({"id": d.id, "text": d.text, "metadata": d.metadata})
    folder = tmp_path_factory.mktemp("docs")
    with gzip.open(folder / "00000.jsonl.gz", "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return folder, docs


@pytest.fixture(scope="module")
def tokenizer_dir(corpus_docs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(corpus_docs[0], out, TokenizerConfig(vocab_size=3000, heldout_fraction=0.02))
    return out


def test_card_and_files(tokenizer_dir):
    card = json.loads((tokenizer_dir / "card.json").read_text())
    assert (tokenizer_dir / "tokenizer.model").exists() and (tokenizer_dir / "tokenizer.vocab").exists()
    assert card["vocab_size"] == 3000 and card["heldout_roundtrip_failures"] == 0
    assert card["heldout_documents"] > 0 and card["heldout_bytes_per_token"] > 1.5
    assert card["model_sha256"] == sha256_file(tokenizer_dir / "tokenizer.model")
    assert card["trainer_options"]["normalization_rule_name"] == "identity"


def test_roundtrip_exact_on_every_shared_document(tokenizer_dir, corpus_docs):
    tok = Tokenizer(tokenizer_dir / "tokenizer.model")
    texts = [d["text"] for d in corpus_docs[1]] + TRICKY
    bad = [t[:80] for t, ids in zip(texts, tok.encode_batch(texts)) if tok.decode(ids) != t]
    assert not bad, f"{len(bad)} documents do not round-trip, e.g. {bad[:3]}"
    assert len(texts) > 30000


def test_newline_is_one_token_and_letters_do_not_fall_back_to_bytes(tokenizer_dir):
    tok = Tokenizer(tokenizer_dir / "tokenizer.model")
    assert len(tok.encode("\n")) == 1 and len(tok.encode("\r\n")) == 1 and len(tok.encode("\n\n")) == 1
    # every printable ASCII character is a piece, however rare in the training text
    pieces = tok.sp.encode("The quick brown fox 中国 0123456789 ~_^`|{}<>@#$%&*\t\r", out_type=str)
    assert not any(p.startswith("<0x") for p in pieces), pieces


def test_chat_tokens_are_reserved_and_never_come_from_text(tokenizer_dir):
    """A base model can be fine-tuned on conversations without resizing its vocabulary: each control
    token has an id of its own, which only the chat template emits, never the text that spells it."""
    from corpus.core.chat import CHAT_TOKENS

    tok = Tokenizer(tokenizer_dir / "tokenizer.model")
    ids = [tok.special_id(t) for t in CHAT_TOKENS]
    assert len(set(ids)) == len(CHAT_TOKENS) and all(3 <= i < tok.vocab_size for i in ids)
    assert [tok.decode([i]) for i in ids] == CHAT_TOKENS
    text = "用户 <|user|> wrote <|end|>\n"
    encoded = tok.encode(text)
    assert not set(encoded) & set(ids) and tok.decode(encoded) == text


def test_retrain_is_skipped(tokenizer_dir, corpus_docs):
    before = (tokenizer_dir / "tokenizer.model").stat().st_mtime_ns
    train_tokenizer(corpus_docs[0], tokenizer_dir, TokenizerConfig(vocab_size=3000, heldout_fraction=0.02))
    assert (tokenizer_dir / "tokenizer.model").stat().st_mtime_ns == before


def test_shards_open_anywhere_and_decode_exactly(tokenizer_dir, corpus_docs, tmp_path):
    import datasets

    out = tmp_path / "shards"
    manifest = write_shards(corpus_docs[0], tokenizer_dir / "tokenizer.model", out, ShardsConfig(val_fraction=0.05, shard_tokens=2_000_000))
    assert manifest == read_manifest(out)
    assert manifest["dtype"] == "uint16" and len(manifest["shards"]) >= 2
    assert manifest["totals"]["val"]["documents"] > 0 and manifest["totals"]["train"]["documents"] > 0
    texts = {d["id"]: d["text"] for d in corpus_docs[1] if d["text"]}
    assert manifest["totals"]["train"]["documents"] + manifest["totals"]["val"]["documents"] == len(texts)
    tok = Tokenizer(tokenizer_dir / "tokenizer.model")
    seen = 0
    for entry in manifest["shards"]:
        path = out / entry["file"]
        assert sha256_file(path) == entry["sha256"]
        ds = datasets.Dataset.from_file(str(path))
        assert ds.num_rows == entry["rows"]
        table = open_shard(path)
        assert table.schema.field("tokens").type == pa.list_(pa.uint16())
        assert table.num_rows == entry["rows"]
        for row in ds.select(range(0, ds.num_rows, 7)):
            assert tok.decode(row["tokens"]) == texts[row["id"]]
            seen += 1
        assert sum(len(t) for t in table.column("tokens").to_pylist()) == entry["tokens"]
    assert seen > 1000
    # the split is by document id: the same on a re-run from scratch
    (out / "manifest.json").unlink()
    again = write_shards(corpus_docs[0], tokenizer_dir / "tokenizer.model", out, ShardsConfig(val_fraction=0.05, shard_tokens=2_000_000))
    assert [e["sha256"] for e in again["shards"]] == [e["sha256"] for e in manifest["shards"]]


def test_the_sample_is_bounded_by_sample_bytes_and_chosen_by_id(shared, tmp_path):
    """Larger input than sample_bytes: a second pass writes the chosen documents to disk (this
    process never holds them); which documents are chosen depends on their ids only, not on the
    order of the input; an input that fits is trained on whole."""
    import random

    text = shared("tinyshakespeare", "input.txt").read_text()
    docs = [{"id": f"p{i}", "text": t} for i, t in enumerate(text.split("\n\n")) if t.strip()]
    size = sum(len(d["text"].encode()) for d in docs)
    shuffled = docs[:]
    random.Random(1).shuffle(shuffled)
    cards = []
    for name, rows in (("a", docs), ("b", shuffled)):
        src = tmp_path / f"{name}.jsonl"
        src.write_text("".join(json.dumps(d) + "\n" for d in rows))
        cards.append(train_tokenizer([str(src)], tmp_path / name,
                                     TokenizerConfig(vocab_size=500, sample_bytes=size // 4, heldout_fraction=0.02)))
        assert not list((tmp_path / name).glob(".sample*")), "the sample file is removed"
    a, b = cards
    assert size // 4 * 0.95 <= a["sample_bytes"] <= size // 4 and a["input_bytes"] >= size * 0.99
    assert (a["sample_bytes"], a["sample_lines"], a["heldout_documents"]) == \
        (b["sample_bytes"], b["sample_lines"], b["heldout_documents"])
    whole = train_tokenizer([str(tmp_path / "a.jsonl")], tmp_path / "w", TokenizerConfig(vocab_size=500, heldout_fraction=0.02))
    newlines = sum(d["text"].count("\n") + 1 for d in docs)
    assert whole["sample_bytes"] + whole["heldout_bytes"] + newlines >= size  # no document left out
