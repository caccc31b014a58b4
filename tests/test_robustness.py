"""Bad input, empty tasks and interrupted runs: each case a user hit, as a test."""

from __future__ import annotations

import gzip
import json
import subprocess

import pytest
from datatrove.data import Document

from corpus.config import ConfigError, config_from_dict
from corpus.core.io import sha256_file
from corpus.readers import HFDatasetReader, InputError, JsonlReader, WarcReader
from corpus.writers import JsonlWriter
from tests.conftest import CORPUS, ROOT, funnel_of


def corpus(*args, cwd=ROOT):
    return subprocess.run([*CORPUS, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def write_pipeline(path, text: str):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_lone_surrogate_is_a_counted_skip_with_file_and_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "bad \\ud800 half"}\n'
                   '{"id": "c", "text": "pair \\ud83d\\ude00 ok"}\n')
    step = JsonlReader([str(src)])
    docs = list(step.run())
    assert [d.id for d in docs] == ["a", "c"] and docs[1].text == "pair \U0001F600 ok"
    assert funnel_of(step).skipped == {"invalid_unicode": 1}
    # through a whole run: the output holds the good records and nothing else
    p = write_pipeline(tmp_path / "p.yaml", f"output_dir: {tmp_path / 'out'}\nsteps:\n"
                       f"  - jsonl_reader: {{paths: ['{src}']}}\n  - jsonl_writer: {{path: docs}}\n")
    r = corpus("run", p)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for f in (tmp_path / "out" / "docs").glob("*.jsonl.gz") for line in gzip.open(f, "rt")]
    assert sorted(d["id"] for d in rows) == ["a", "c"]


def test_a_failed_task_publishes_no_partial_file(tmp_path):
    def broken():
        yield Document(text="fine", id="1")
        raise RuntimeError("boom")

    writer = JsonlWriter(str(tmp_path / "docs"))
    with pytest.raises(RuntimeError, match="boom"):
        list(writer.run(broken(), rank=0))
    assert not list((tmp_path / "docs").glob("*.jsonl.gz"))
    assert not list((tmp_path / "docs").rglob("*.gz"))


def test_a_failed_task_is_one_clear_error(tmp_path):
    src = tmp_path / "page.html"
    src.write_text("<html><body><p>hello</p></body></html>")
    p = write_pipeline(tmp_path / "p.yaml", f"output_dir: {tmp_path / 'out'}\nsteps:\n"
                       f"  - files_reader: {{paths: ['{src}']}}\n  - language_id: {{model_path: '{src}'}}\n")
    r = corpus("run", p)
    assert r.returncode == 1 and "error: job 00-steps failed" in r.stderr and "Traceback" not in r.stderr
    assert "console.log" in r.stderr


@pytest.mark.parametrize("executor, message", [
    ({"tasks": 0}, "executor.tasks must be at least 1"),
    ({"tasks": -2}, "executor.tasks must be at least 1"),
    ({"workers": 0}, "executor.workers must be at least 1"),
])
def test_executor_numbers_are_checked_at_load(tmp_path, executor, message):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"executor": executor, "steps": [{"jsonl_reader": {"paths": [str(tmp_path / "a.jsonl")]}}]})


def test_output_dir_under_a_file_is_refused_before_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        config_from_dict({"output_dir": str(tmp_path / "file" / "run"), "steps": [{"jsonl_reader": {"paths": ["x"]}}]})


def test_hf_reader_path_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a dataset saved with save_to_disk"):
        HFDatasetReader(path=str(tmp_path))


def test_vocab_size_floor_is_sentencepieces(tmp_path):
    from corpus.tokenizer.train import MIN_VOCAB_SIZE, TokenizerConfig, train_tokenizer

    assert MIN_VOCAB_SIZE == 367
    with pytest.raises(ValueError, match="vocab_size must be at least 367"):
        TokenizerConfig(vocab_size=366)
    with pytest.raises(ConfigError, match="vocab_size must be at least 367"):
        config_from_dict({"steps": [{"jsonl_reader": {"paths": ["x"]}}], "tokenizer": {"vocab_size": 300}})
    docs = tmp_path / "d.txt"
    docs.write_text("The quick brown fox jumps over the lazy dog. " * 200 + "\nçà 中文 ü\n")
    card = train_tokenizer([str(docs)], tmp_path / "tok", TokenizerConfig(vocab_size=367))
    assert card["vocab_size"] == 367


def test_small_text_with_a_large_vocab_trains_a_smaller_one(tmp_path):
    from corpus.tokenizer.train import TokenizerConfig, train_tokenizer

    docs = tmp_path / "d.txt"
    docs.write_text("A short text for a large vocabulary.\n" * 10)
    card = train_tokenizer([str(docs)], tmp_path / "tok", TokenizerConfig(vocab_size=8000))
    assert 367 <= card["vocab_size"] < 8000


def test_corrupt_gzip_member_loses_only_itself(shared, tmp_path):
    data = bytearray(shared("warc", "dolma", "sample-0000.warc.gz").read_bytes())
    members = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\x1f\x8b\x08"]
    bad = members[len(members) // 2]
    data[bad + 30:bad + 60] = bytes(b ^ 0xFF for b in data[bad + 30:bad + 60])
    (tmp_path / "corrupt.warc.gz").write_bytes(bytes(data))
    intact = list(WarcReader([str(shared("warc", "dolma", "sample-0000.warc.gz"))]).run())
    step = WarcReader([str(tmp_path / "corrupt.warc.gz")])
    docs = list(step.run())
    assert len(intact) == 22 and len(docs) == 21  # the corrupt member's record, and only it
    assert {d.metadata["url"] for d in docs} < {d.metadata["url"] for d in intact}
    assert funnel_of(step).skipped == {"corrupt_member": 1}


def test_resource_records_with_html_are_read(shared):
    step = WarcReader([str(shared("warc", "warcio", "example-resource.warc.gz"))])
    docs = list(step.run())
    assert len(docs) == 1 and "<html" in docs[0].text.lower()


def test_stale_temporary_in_dedup_does_not_break_a_rerun(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [{"id": str(i), "text": f"document number {i} " + "with the same words in it " * 20} for i in range(6)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = write_pipeline(tmp_path / "p.yaml", f"output_dir: {tmp_path / 'out'}\nexecutor: {{tasks: 2}}\nsteps:\n"
                       f"  - jsonl_reader: {{paths: ['{src}']}}\n  - minhash_dedup: {{}}\n  - jsonl_writer: {{}}\n")
    assert corpus("run", p).returncode == 0
    out = tmp_path / "out"
    # a kill during the pairs stage leaves a temporary there, and the clusters stage unfinished
    (out / "dedup" / "pairs" / ".000.npy.tmp-4242").write_bytes(b"\x93NUMPY half a file")
    for marker in (out / "logs" / "00-minhash_dedup-2" / "completions").iterdir():
        marker.unlink()
    r = corpus("run", p)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list((out / "dedup").rglob(".*.tmp-*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"][-1]["documents_out"] == 1  # six near-copies: one kept


def test_tokenizer_model_is_reproducible(tmp_path):
    from corpus.tokenizer.train import TokenizerConfig, train_tokenizer

    docs = tmp_path / "d.jsonl"
    docs.write_text("".join(json.dumps({"id": str(i), "text": f"line {i} of a small corpus, repeated"}) + "\n"
                            for i in range(300)))
    a = train_tokenizer([str(docs)], tmp_path / "a", TokenizerConfig(vocab_size=400))
    b = train_tokenizer([str(docs)], tmp_path / "b", TokenizerConfig(vocab_size=400))
    assert a["model_sha256"] == b["model_sha256"] == sha256_file(tmp_path / "b" / "tokenizer.model")
    assert (tmp_path / "a" / "tokenizer.vocab").read_bytes() == (tmp_path / "b" / "tokenizer.vocab").read_bytes()


def test_every_document_dropped_says_so(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "too short"}\n')
    base = f"output_dir: {tmp_path / 'out'}\nsteps:\n  - jsonl_reader: {{paths: ['{src}']}}\n  - gopher_quality: {{}}\n"
    r = corpus("run", write_pipeline(tmp_path / "p.yaml", base))
    assert r.returncode == 0 and "every document was dropped" in r.stderr
    r = corpus("run", write_pipeline(tmp_path / "q.yaml", base + "tokenizer: {vocab_size: 400}\n"))
    assert r.returncode == 1 and "every document was dropped" in r.stderr and "Traceback" not in r.stderr
    assert "gopher_short_doc" in r.stdout  # the funnel was printed


def test_one_file_corpus_gets_val_by_position(shared, tmp_path):
    text = shared("tinyshakespeare", "input.txt")
    p = write_pipeline(tmp_path / "p.yaml", f"output_dir: {tmp_path / 'out'}\nsteps:\n"
                       f"  - files_reader: {{paths: ['{text}']}}\ntokenizer: {{vocab_size: 512}}\n"
                       "shards: {val_fraction: 0.1}\n")
    r = corpus("run", p)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "shards" / "manifest.json").read_text())
    assert manifest["split"]["method"] == "position"
    totals = manifest["totals"]
    assert totals["val"]["documents"] == 1 and 0.08 < totals["val"]["tokens"] / totals["train"]["tokens"] < 0.13
    assert totals["train"]["bytes"] + totals["val"]["bytes"] == len(text.read_bytes())  # cut exactly
    card = json.loads((tmp_path / "out" / "tokenizer" / "card.json").read_text())
    assert card["heldout_bytes_per_token"] and card["heldout_split"] == "position"


def test_one_file_corpus_trains_and_bits_per_byte_fall(shared, tmp_path):
    text = shared("tinyshakespeare", "input.txt")
    p = write_pipeline(tmp_path / "p.yaml", f"output_dir: {tmp_path / 'out'}\nsteps:\n"
                       f"  - files_reader: {{paths: ['{text}']}}\ntokenizer: {{vocab_size: 512}}\n"
                       "shards: {val_fraction: 0.1}\ntrain: {max_steps: 60, eval_interval: 30, block_size: 64, "
                       "n_layer: 2, n_embd: 64, batch_size: 8, threads: 1, sample_tokens: 10}\n")
    r = corpus("run", p)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "summary.json").read_text())["stages"]["train"]
    assert result["final_val_bpb"] < result["first_val_bpb"]


def test_starter_pipeline_runs_on_one_warc_with_two_tasks(shared, tmp_path):
    """`corpus init`, one WARC file in data/, `corpus run`: to the end (tasks: 2 leaves a task empty)."""
    assert corpus("init", cwd=tmp_path).returncode == 0
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "page.warc.gz").write_bytes(shared("warc", "dolma", "sample-0000.warc.gz").read_bytes())
    r = corpus("run", "pipeline.yaml", "--set", "train.max_steps=20", "--set", "train.eval_interval=10",
               "--set", "train.threads=1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "my-corpus" / "summary.json").read_text())
    assert summary["executor"]["tasks"] == 2 and summary["steps"][-1]["documents_out"] >= 1
    assert summary["stages"]["train"]["steps"] == 20
