"""Checkpoints: saving one, loading its model, and resuming a run from it.

A checkpoint (``ckpt.pt``, written atomically) holds everything needed to continue training
exactly where it stopped: the model and optimizer states, the training configuration, the
model's shape (``model_config``, a ``GPTConfig``), the RNG states, the step, the data position
(how many training windows have been consumed) and the evaluation history, plus what the
caller adds (vocabulary size, eos id, tokenizer path, process count).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from corpus.core.io import atomic_path, local_copy
from corpus.trainer.config import TrainConfig
from corpus.trainer.model import GPT, GPTConfig

CHECKPOINT = "ckpt.pt"


def checkpoint_tokenizer(state: dict):
    """The tokenizer a checkpoint was trained with: the file it names, or, where that path does
    not exist (a checkpoint copied to another machine or fetched from object storage), the model
    the checkpoint carries."""
    from corpus.tokenizer.sp import Tokenizer

    path = Path(state["tokenizer"])
    if path.exists() or not state.get("tokenizer_model"):
        return Tokenizer(path)
    with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
        (Path(folder) / "tokenizer.model").write_bytes(state["tokenizer_model"])
        return Tokenizer(Path(folder) / "tokenizer.model")


def save_checkpoint(path: Path, model: GPT, optimizer, cfg: TrainConfig, step: int, position: int, extra: dict) -> None:
    state = {
        "model": model.state_dict(),
        "model_config": asdict(model.config),
        "optimizer": optimizer.state_dict(),
        "config": asdict(cfg),
        "step": step,
        "data_position": position,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_model(checkpoint: str | Path, device: str = "cpu") -> tuple[GPT, dict]:
    """The checkpoint's model on ``device``, and the whole checkpoint state (``state["tokenizer"]``
    is the tokenizer's path: see ``checkpoint_tokenizer``). ``checkpoint`` may be an fsspec URL
    (fetched to a temporary file). Checkpoints without ``model_config`` (older ones) are rebuilt
    from their training configuration and vocabulary size."""
    with local_copy(checkpoint) as local:
        state = torch.load(local, map_location=device, weights_only=False)
    if "model_config" in state:
        config = GPTConfig(**state["model_config"])
    else:
        config = GPTConfig.from_train_config(state["config"], state["vocab_size"])
    model = GPT(config)
    model.load_state_dict(state["model"])
    return model.to(device), state


@dataclass
class Progress:
    """Where a run stands: optimizer steps taken, training windows consumed, evaluations so far."""

    step: int = 0
    position: int = 0
    history: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0  # training seconds before this run (all earlier runs together)
    train_loss: float | None = None  # the training loss at ``step``


def resume(path: Path, model: GPT, optimizer, cfg: TrainConfig, world: int = 1, device: str = "cpu") -> Progress:
    """Restore the model, optimizer and RNG states from the checkpoint at ``path`` and return its
    progress; a fresh ``Progress`` where there is no checkpoint. Only ``max_steps`` may differ from
    the configuration the checkpoint was made with (so a finished run can be extended)."""
    if not path.exists():
        return Progress()
    state = torch.load(path, map_location=device, weights_only=False)
    if state["config"] != asdict(cfg) | {"max_steps": state["config"]["max_steps"]} or state.get("world", 1) != world:
        raise ValueError(f"{path} was made with another configuration or process count; "
                         f"remove {path.parent} to start over")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"].cpu())  # map_location moved it to ``device``
    np.random.set_state(state["rng"]["numpy"])
    cuda = state["rng"].get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    return Progress(state["step"], state["data_position"], state.get("history", []), state.get("elapsed_s", 0.0),
                    state.get("train_loss"))
