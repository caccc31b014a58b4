"""The GPT trainer on Arrow shards: loss falls, exact resume, bits per byte."""

import csv
import gzip
import json
import math
import subprocess
import sys

import pytest
import torch

from corpus.tokenizer.encode import ShardsConfig, write_shards
from corpus.tokenizer.train import TokenizerConfig, train_tokenizer
from corpus.trainer.config import TrainConfig
from corpus.trainer.data import PackedTokens
from corpus.trainer.checkpoint import load_model
from corpus.trainer.train import train

TINY = dict(n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=8, learning_rate=3e-3, min_lr=3e-4,
            warmup_steps=5, eval_interval=10, eval_batches=4, log_interval=10, sample_tokens=20, threads=1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from tests.conftest import shared_path

    text = shared_path("tinyshakespeare", "input.txt").read_text()
    root = tmp_path_factory.mktemp("shk")
    with gzip.open(root / "docs.jsonl.gz", "wt") as f:
        for i, para in enumerate(text.split("\n\n")[:3000]):
            f.write(json.dumps({"id": f"p{i}", "text": para}) + "\n")
    train_tokenizer(root / "docs.jsonl.gz", root / "tok", TokenizerConfig(vocab_size=512))
    write_shards(root / "docs.jsonl.gz", root / "tok" / "tokenizer.model", root / "shards", ShardsConfig(val_fraction=0.05))
    return root / "shards"


def test_packing_puts_eos_between_documents(shards):
    data = PackedTokens(shards, "val", eos_id=2)
    first = data.window(0, int(data.lens[0]) + 3)
    assert first[data.lens[0]] == 2 and 2 not in first[: data.lens[0]]
    assert data.total == int(data.lens.sum()) + data.documents


def test_loss_and_bits_per_byte_fall(shards, tmp_path):
    result = train(shards, tmp_path, TrainConfig(**TINY, max_steps=60))
    assert result["final_val_loss"] < result["first_val_loss"] - 1.0
    assert result["final_val_bpb"] < result["first_val_bpb"]
    # at initialisation the loss is about ln(vocab): bits per byte is that, scaled by tokens per byte
    assert abs(result["first_val_loss"] - math.log(512)) < 0.5
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 30, 40, 50, 60]
    assert result["sample"]
    model, state = load_model(tmp_path / "checkpoint")
    assert state["step"] == 60 and state["data_position"] == 60 * 8


def test_resume_gives_the_same_curve(shards, tmp_path):
    cfg = TrainConfig(**TINY, max_steps=40)
    full = train(shards, tmp_path / "full", cfg)
    train(shards, tmp_path / "cut", cfg, stop_at=20)  # interrupted after step 20
    resumed = train(shards, tmp_path / "cut", cfg)
    full_rows = list(csv.DictReader(open(tmp_path / "full" / "metrics.csv")))
    cut_rows = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [r["step"] for r in cut_rows] == [r["step"] for r in full_rows]
    for a, b in zip(full_rows, cut_rows):
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), abs=1e-4)
    a, _ = load_model(tmp_path / "full" / "checkpoint")
    b, _ = load_model(tmp_path / "cut" / "checkpoint")
    for (na, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(pa, pb, atol=1e-5), na
    assert resumed["final_val_loss"] == pytest.approx(full["final_val_loss"], abs=1e-4)


def test_eval_cli_and_loss_curve(shards, tmp_path):
    from tests.conftest import CORPUS, ROOT, shared_path

    train(shards, tmp_path, TrainConfig(**TINY, max_steps=20))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = subprocess.run([*CORPUS, "eval", str(tmp_path / "checkpoint"), "--text", str(shared_path("tinyshakespeare", "input.txt"))],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["bytes"] == 1115394 and 0 < out["bits_per_byte"] < 8 and out["tokens"] > 100_000


def test_ddp_two_cpu_processes_match_one(shards, tmp_path):
    """torchrun with 2 gloo processes of batch B equals 1 process of batch 2B."""

    from tests.conftest import ROOT

    common = ["--set", "n_layer=2", "--set", "n_head=2", "--set", "n_embd=64", "--set", "block_size=64",
              "--set", "max_steps=12", "--set", "eval_interval=6", "--set", "eval_batches=4", "--set", "threads=1",
              "--set", "warmup_steps=2", "--set", "sample_tokens=5"]
    one = subprocess.run([sys.executable, "-m", "corpus.cli", "train", "--shards", str(shards), "--output", str(tmp_path / "one"),
                          *common, "--set", "batch_size=8"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                          "-m", "corpus.cli", "train", "--shards", str(shards), "--output", str(tmp_path / "two"),
                          *common, "--set", "batch_size=4"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a = list(csv.DictReader(open(tmp_path / "one" / "metrics.csv")))
    b = list(csv.DictReader(open(tmp_path / "two" / "metrics.csv")))
    assert [r["step"] for r in a] == [r["step"] for r in b] == ["0", "6", "12"]
    for ra, rb in zip(a, b):
        assert float(ra["val_loss"]) == pytest.approx(float(rb["val_loss"]), abs=2e-3)
    ma, _ = load_model(tmp_path / "one" / "checkpoint")
    mb, state = load_model(tmp_path / "two" / "checkpoint")
    assert state["world"] == 2 and state["data_position"] == 12 * 8
    for (name, pa_), (_, pb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert torch.allclose(pa_, pb, atol=2e-3), name


def test_rotary_embeddings_train(shards, tmp_path):
    result = train(shards, tmp_path, TrainConfig(**TINY, max_steps=40, rope=True))
    assert result["final_val_loss"] < result["first_val_loss"] - 1.0
    model, _ = load_model(tmp_path / "checkpoint")
    assert model.rope and not hasattr(model, "wpe")


def test_every_command_sets_the_thread_policy_before_torch_loads():
    """OpenMP reads OMP_WAIT_POLICY once, when torch loads: importing any part of corpus (as every
    command does first) sets it to PASSIVE unless the user chose a policy."""
    import os

    code = "import corpus.trainer.model, os, sys; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["PASSIVE", "True"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ACTIVE", "True"]
