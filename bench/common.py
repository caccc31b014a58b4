"""Helpers shared by the benchmarks."""

from __future__ import annotations

import multiprocessing as mp
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def require_shared() -> Path:
    """The shared test data folder, or exit saying that the benchmark needs it."""
    if not SHARED.exists():
        sys.exit(f"{SHARED} is absent: this benchmark reads the shared test data (see its README)")
    return SHARED


def in_child(fn, *args):
    """Run ``fn(*args, conn)`` in a fresh (spawned) process and return what it sends on ``conn``:
    each tool gets its own process, so its peak memory is its own."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=fn, args=(*args, child))
    p.start()
    while not parent.poll(1):
        if not p.is_alive():
            raise RuntimeError(f"{getattr(fn, '__name__', fn)} failed (exit code {p.exitcode}); see its traceback above")
    out = parent.recv()
    p.join()
    return out
