"""Model FLOPs utilisation, for any device: achieved FLOP/s over the device's peak.

FLOPs per token follow nanoGPT (PaLM appendix B): 6N + 12·L·T·d, N the parameters without
position embeddings. The peak is the datasheet's dense bf16 figure for GPUs this table knows,
and otherwise (other GPUs, CPUs, fp32) the FLOP/s of a large matrix product measured here, in
the training precision: MFU then says how close training comes to the best this machine does.
"""

from __future__ import annotations

import time

import torch

DATASHEET_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


def flops_per_token(n_params: int, n_layer: int, n_embd: int, block_size: int) -> int:
    return 6 * n_params + 12 * n_layer * n_embd * block_size


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_flops(device: str, dtype: torch.dtype | None) -> tuple[float, str]:
    """(peak FLOP/s, where the figure comes from)."""
    dtype = dtype or torch.float32
    if device.startswith("cuda") and dtype == torch.bfloat16:
        name = torch.cuda.get_device_name(torch.device(device))
        for key, value in DATASHEET_BF16.items():
            if key in name:
                return value, f"{name} datasheet, bf16"
    n = 4096 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best, f"measured {n}x{n} matmul, {str(dtype).removeprefix('torch.')}"
