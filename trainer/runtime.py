"""Where and how training runs: the device, the autocast precision, and the process group under
``torchrun``."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist

from corpus.trainer.config import TrainConfig


def pick_device(name: str) -> str:
    """``name``, or for ``auto`` the best device present: cuda, then mps, then cpu."""
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def autocast_dtype(cfg: TrainConfig, device: str) -> torch.dtype | None:
    """The autocast dtype, or None for plain float32: ``auto`` is bf16 on CUDA, float32 elsewhere."""
    if cfg.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else None
    return {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]


def autocast(device: str, dtype: torch.dtype | None):
    """The context the model runs in: autocast to ``dtype``, or nothing for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def setup_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank). Under ``torchrun`` (WORLD_SIZE > 1) joins the process
    group: NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if world > 1:
        return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0
