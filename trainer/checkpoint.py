"""Checkpoints: saving one, loading its model, and resuming a run from it.

A checkpoint is a folder (``checkpoint/`` in a training run's folder), in the manner of nanochat:
tensors in safetensors files, everything else in JSON, so that loading one runs no code from
whoever wrote it (no pickle):

- ``model.safetensors``: the weights (the tied output head stored once);
- ``optimizer.safetensors``: the optimizer's tensors and the torch RNG states;
- ``meta.json``: the model's shape (``model_config``, a ``GPTConfig``) and kind (``gpt`` or
  ``reward``), the training configuration, the step, the data position (how many training
  windows have been consumed), the evaluation history, the numpy RNG state, the optimizer's
  hyperparameters, plus what the caller adds (vocabulary size, eos id, tokenizer path, process
  count, ...);
- ``tokenizer.model``: the sentencepiece model the run trained with, so the folder is complete
  wherever it is copied.

The folder is written whole under a temporary name and swapped in (``corpus.core.io.atomic_dir``):
a process killed while saving leaves the previous checkpoint.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from corpus.core.io import atomic_dir, local_copy, run_path, settled_dir
from corpus.trainer.model import GPT, GPTConfig, RewardModel

CHECKPOINT = "checkpoint"
MODEL, OPTIMIZER, META, TOKENIZER = "model.safetensors", "optimizer.safetensors", "meta.json", "tokenizer.model"
KINDS = {"gpt": GPT, "reward": RewardModel}


def checkpoint_tokenizer(state: dict):
    """The tokenizer a checkpoint was trained with: the model the checkpoint carries, or, in a
    checkpoint that carries none, the file it names. (The carried one first: the file at that path
    may since have been moved, or replaced by another run's tokenizer.)"""
    from corpus.tokenizer.sp import Tokenizer

    if not state.get("tokenizer_model"):
        return Tokenizer(Path(state["tokenizer"]))
    with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
        (Path(folder) / TOKENIZER).write_bytes(state["tokenizer_model"])
        tokenizer = Tokenizer(Path(folder) / TOKENIZER)
    # for messages (the temporary file is gone): the path it was trained from
    tokenizer.path = f"{state.get('tokenizer', TOKENIZER)} (as the checkpoint carries it)"
    return tokenizer


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with each shared tensor once, under its first name (``wte.weight``, not the
    tied ``lm_head.weight``)."""
    seen, out = set(), {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            out[name] = tensor.detach().cpu().contiguous()
    return out


def _load_weights(model: torch.nn.Module, file, device: str = "cpu") -> None:
    """``file``'s weights into ``model``; only tied tensors may be absent from the file."""
    missing, unexpected = model.load_state_dict(load_file(str(file), device=str(device)), strict=False)
    tied = set(model.state_dict()) - set(_weights(model))
    if unexpected or set(missing) - tied:
        raise ValueError(f"{file} does not fit the model: missing {sorted(set(missing) - tied)}, "
                         f"unexpected {sorted(unexpected)}")


def _optimizer_tensors(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state dict as flat tensors (``state.<param>.<key>``) and JSON (the rest)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in sd["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer, cfg, step: int, position: int, extra: dict) -> None:
    """The checkpoint folder at ``path``. ``cfg`` is the stage's configuration dataclass; ``extra``
    may carry ``tokenizer_model`` (the tokenizer's bytes), written as ``tokenizer.model``."""
    extra = dict(extra)
    tokenizer_model = extra.pop("tokenizer_model", None)
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    numpy_rng = np.random.get_state()
    opt_tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            opt_tensors[f"rng.cuda.{i}"] = s
    meta = {
        "kind": next(k for k, cls in KINDS.items() if type(model) is cls),
        "model_config": asdict(model.config),
        "config": asdict(cfg),
        "step": step,
        "data_position": position,
        "optimizer": opt_meta,
        "rng_numpy": [numpy_rng[0], numpy_rng[1].tolist(), *numpy_rng[2:]],
        **extra,
    }
    with atomic_dir(path) as tmp:
        save_file(_weights(model), str(tmp / MODEL))
        save_file(opt_tensors, str(tmp / OPTIMIZER))
        if tokenizer_model is not None:
            (tmp / TOKENIZER).write_bytes(tokenizer_model)
        (tmp / META).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def checkpoint_folder(checkpoint: str | Path):
    """The checkpoint folder meant by ``checkpoint``: the folder itself, or a training run's folder
    that holds one."""
    path = settled_dir(run_path(checkpoint))
    inner = settled_dir(path / CHECKPOINT)
    return inner if not (path / META).exists() and (inner / META).exists() else path


def read_meta(checkpoint: str | Path) -> dict:
    folder = checkpoint_folder(checkpoint)
    if not (folder / META).exists():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint there (a folder with {META} and {MODEL})")
    return json.loads((folder / META).read_text(encoding="utf-8"))


def load_model(checkpoint: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """The checkpoint's model on ``device`` (a ``GPT``, or a ``RewardModel`` for a reward
    checkpoint), and the checkpoint's metadata, with ``tokenizer_model`` (the tokenizer's bytes;
    see ``checkpoint_tokenizer``). ``checkpoint`` is the checkpoint folder or the run folder that
    holds it, a local path or an fsspec URL."""
    folder = checkpoint_folder(checkpoint)
    state = read_meta(folder)
    model = KINDS[state["kind"]](GPTConfig(**state["model_config"]))
    with local_copy(folder / MODEL) as weights:
        _load_weights(model, weights)
    if (folder / TOKENIZER).exists():
        state["tokenizer_model"] = (folder / TOKENIZER).read_bytes()
    return model.to(device), state


@dataclass
class Progress:
    """Where a run stands: optimizer steps taken, training windows consumed, evaluations so far."""

    step: int = 0
    position: int = 0
    history: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0  # training seconds before this run (all earlier runs together)
    train_loss: float | None = None  # the training loss at ``step``


def resume(path: Path, model: torch.nn.Module, optimizer, cfg, world: int = 1, device: str = "cpu") -> Progress:
    """Restore the model, optimizer and RNG states from the checkpoint at ``path`` and return its
    progress; a fresh ``Progress`` where there is no checkpoint. Only ``max_steps`` may differ from
    the configuration the checkpoint was made with (so a finished run can be extended)."""
    folder = settled_dir(path)
    if not (folder / META).exists():
        return Progress()
    state = read_meta(folder)
    if state["config"] != asdict(cfg) | {"max_steps": state["config"]["max_steps"]} or state.get("world", 1) != world:
        raise ValueError(f"{path} was made with another configuration or process count; "
                         f"remove {path.parent} to start over")
    _load_weights(model, folder / MODEL, device)
    tensors = load_file(str(folder / OPTIMIZER), device=str(device))
    optimizer.load_state_dict(_optimizer_state(tensors, state["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"].cpu())
    kind, key, pos, has_gauss, cached = state["rng_numpy"]
    np.random.set_state((kind, np.array(key, dtype=np.uint32), pos, has_gauss, cached))
    cuda = [tensors[f"rng.cuda.{i}"].cpu() for i in range(len(tensors)) if f"rng.cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return Progress(state["step"], state["data_position"], state.get("history", []), state.get("elapsed_s", 0.0),
                    state.get("train_loss"))
