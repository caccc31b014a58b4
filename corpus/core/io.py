"""Small I/O helpers: every file a later stage reads is written to a temporary name and renamed
into place only when complete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path


TMP_MARK = ".tmp-"  # in the names of files being written: .<name>.tmp-<pid>


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yields a temporary path next to ``path``; renames it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_arrow(path: str | os.PathLike, table, stream: bool = False) -> None:
    """An Arrow table to an IPC file (random access), or stream (``stream=True``), atomically."""
    import pyarrow as pa

    with atomic_path(path) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink:
            writer = pa.ipc.new_stream(sink, table.schema) if stream else pa.ipc.new_file(sink, table.schema)
            with writer:
                writer.write_table(table)


def finished_files(folder: str | os.PathLike, suffix: str) -> list[str]:
    """Names of the complete files with ``suffix`` in ``folder``, sorted (never a temporary
    left by a killed process)."""
    return sorted(n for n in os.listdir(folder) if n.endswith(suffix) and not n.startswith("."))


def remove_stale_temporaries(root: str | os.PathLike) -> int:
    """Delete the temporaries that killed processes left under ``root`` (``atomic_path``'s
    names); run at the start of a run, when nothing else writes there. Returns how many."""
    removed = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.startswith(".") and TMP_MARK in name:
                os.unlink(os.path.join(dirpath, name))
                removed += 1
    return removed
