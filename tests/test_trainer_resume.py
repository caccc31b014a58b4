"""The trainer's checkpoints and loader: exact resume with dropout and gradient accumulation,
the checkpoint folder (safetensors and JSON, no pickle), refused resumes, and the window order and packing against a plain reference."""

import csv

import numpy as np
import pytest
import torch

from corpus.trainer import data
from corpus.trainer.checkpoint import load_model
from corpus.trainer.config import TrainConfig
from corpus.trainer.model import GPTConfig
from corpus.trainer.train import train
from tests.test_trainer import shards  # noqa: F401  (the fixture: tinyshakespeare shards, vocab 512)

SMALL = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=4, warmup_steps=2, eval_interval=5,
             eval_batches=2, log_interval=5, sample_tokens=5, threads=1)


def test_resume_is_exact_with_dropout_and_accumulation(shards, tmp_path):
    cfg = TrainConfig(**SMALL, max_steps=10, dropout=0.2, grad_accum=2)
    full = train(shards, tmp_path / "full", cfg)
    train(shards, tmp_path / "cut", cfg, stop_at=5)
    resumed = train(shards, tmp_path / "cut", cfg)
    assert resumed["final_train_loss"] == full["final_train_loss"]
    a, sa = load_model(tmp_path / "full" / "checkpoint")
    b, sb = load_model(tmp_path / "cut" / "checkpoint")
    assert sa["data_position"] == sb["data_position"] == 10 * 2 * 4
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    rows = [list(csv.DictReader(open(tmp_path / run / "metrics.csv"))) for run in ("full", "cut")]
    assert [(r["step"], r["val_loss"]) for r in rows[0]] == [(r["step"], r["val_loss"]) for r in rows[1]]


def test_checkpoint_model_config_and_refused_resume(shards, tmp_path):
    cfg = TrainConfig(**SMALL, max_steps=5, rope=True)
    train(shards, tmp_path, cfg)
    model, state = load_model(tmp_path / "checkpoint")
    assert state["model_config"] == {"vocab_size": 512, "block_size": 32, "n_layer": 1, "n_head": 2, "n_embd": 32,
                                     "dropout": 0.0, "rope": True}
    assert model.config == GPTConfig(**state["model_config"]) and state["tokenizer"].endswith("tokenizer.model")
    longer = train(shards, tmp_path, TrainConfig(**SMALL, max_steps=10, rope=True))  # only max_steps may change
    assert longer["steps"] == 10
    with pytest.raises(ValueError, match="another configuration"):
        train(shards, tmp_path, TrainConfig(**SMALL, max_steps=15, rope=True, learning_rate=1e-3))


def test_checkpoint_is_tensors_and_json_and_survives_a_swap_cut_short(shards, tmp_path):
    """No pickle anywhere (nothing runs code when a checkpoint loads); a process killed between the
    two renames of a save leaves the previous checkpoint, which loads and resumes."""
    import json

    from safetensors import safe_open

    cfg = TrainConfig(**SMALL, max_steps=5)
    train(shards, tmp_path, cfg)
    folder = tmp_path / "checkpoint"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.safetensors", "optimizer.safetensors",
                                                        "tokenizer.model"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == "gpt" and meta["step"] == 5 and meta["config"]["max_steps"] == 5
    with safe_open(folder / "model.safetensors", "pt") as f:
        assert "wte.weight" in f.keys() and f.get_tensor("wte.weight").shape == (512, 32)
    before, _ = load_model(tmp_path)
    folder.rename(tmp_path / ".checkpoint.old")  # as a save killed after moving the old folder aside
    after, state = load_model(tmp_path)
    assert state["step"] == 5 and all(torch.equal(a, b) for a, b in zip(before.state_dict().values(),
                                                                         after.state_dict().values()))
    assert train(shards, tmp_path, TrainConfig(**SMALL, max_steps=10))["steps"] == 10
    assert folder.exists() and not (tmp_path / ".checkpoint.old").exists()


def test_a_save_after_a_swap_cut_short_keeps_the_old_folder_until_the_new_one_is_in(tmp_path, monkeypatch):
    """After a process died between atomic_dir's two renames, only ``.NAME.old`` holds the
    checkpoint: the next save must not remove it before its own folder is in place."""
    from corpus.core import io

    folder = tmp_path / "checkpoint"
    with io.atomic_dir(folder) as tmp:
        (tmp / "meta.json").write_text("1")
    folder.rename(tmp_path / ".checkpoint.old")  # killed between the renames

    def killed(src, dst):
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(io.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_dir(folder) as tmp:
            (tmp / "meta.json").write_text("2")
    assert (io.settled_dir(folder) / "meta.json").read_text() == "1"
    monkeypatch.undo()
    with io.atomic_dir(folder) as tmp:
        (tmp / "meta.json").write_text("2")
    assert (io.settled_dir(folder) / "meta.json").read_text() == "2" and not (tmp_path / ".checkpoint.old").exists()


def _fake_parts(monkeypatch):
    """Four shard chunks of random documents, with empty documents and a chunk of only empty ones."""
    rng = np.random.default_rng(0)
    parts, stream = [], []
    for p in range(4):
        lens = np.zeros(5, np.int64) if p == 2 else rng.integers(0, 30, 50)
        lens[:2] = 0
        offsets = np.concatenate([[0], np.cumsum(lens)])
        tokens = rng.integers(3, 500, offsets[-1]).astype(np.uint16)
        parts.append((tokens, offsets))
        for d in range(len(lens)):
            stream += [*tokens[offsets[d]:offsets[d + 1]], 2]
    monkeypatch.setattr(data, "split_tokens", lambda folder, split: parts)
    return data.PackedTokens("unused", "train", eos_id=2), np.array(stream)


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_follow_the_seeded_epoch_orders(monkeypatch, shuffle):
    packed, stream = _fake_parts(monkeypatch)
    assert packed.total == len(stream)
    block = 16
    batches = data.Batches(packed, block, seed=7, shuffle=shuffle)
    n = batches.windows
    # the order, one window at a time: position i is window perm_epoch[i % n] of epoch i // n
    order = np.concatenate([np.random.default_rng([7, e]).permutation(n) if shuffle else np.arange(n) for e in range(4)])
    for position, size in [(0, 5), (n - 3, 7), (2 * n - 1, 2), (n + 4, 2 * n + 3), (3 * n - 5, 1)]:
        x, y = batches.get(position, size)
        starts = order[position:position + size] * block
        expected = np.stack([stream[s:s + block + 1] for s in starts])
        assert np.array_equal(x.numpy(), expected[:, :-1]) and np.array_equal(y.numpy(), expected[:, 1:])


def test_resumed_runs_report_true_figures(shards, tmp_path, monkeypatch):
    """After a resume: tokens/s counts only this run's steps, elapsed_s goes on from the earlier
    runs, and a run resumed from its final checkpoint still reports its final training loss."""
    cfg = TrainConfig(**SMALL | {"eval_interval": 10, "log_interval": 10}, max_steps=60)
    train(shards, tmp_path, cfg, stop_at=30)
    first = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    resumed = train(shards, tmp_path, cfg)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert float(rows[-1]["elapsed_s"]) >= float(first[-1]["elapsed_s"])  # goes on, not from zero
    before = sorted(float(r["tokens_per_s"]) for r in rows[1:4])
    after = sorted(float(r["tokens_per_s"]) for r in rows[4:])
    # the first row after the resume counted 40 steps over 10 steps' time (4x) before the fix
    assert after[-1] < 2.5 * before[1]
    again = train(shards, tmp_path, cfg)  # from the final checkpoint: no step to take
    assert again["steps"] == 60 and again["final_train_loss"] == resumed["final_train_loss"] is not None


def test_checkpoint_interval_is_its_own(shards, tmp_path):
    cfg = TrainConfig(**SMALL | {"eval_interval": 100}, max_steps=9, checkpoint_interval=3)
    train(shards, tmp_path, cfg, stop_at=7)
    _, state = load_model(tmp_path / "checkpoint")
    assert state["step"] == 6  # saved at 3 and 6, though no evaluation ran there


@pytest.mark.parametrize("field", ["eval_interval", "log_interval"])
def test_zero_intervals_are_refused_at_load(field):
    from corpus.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=f"{field} must be at least 1"):
        config_from_dict({"steps": [{"jsonl_reader": {"paths": ["x"]}}], "tokenizer": {}, "shards": {},
                          "train": {field: 0}})
