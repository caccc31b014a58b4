"""Helpers shared by the benchmarks."""

from __future__ import annotations

import multiprocessing as mp


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
