"""Small I/O helpers: every file a later stage reads is written to a temporary name and renamed
into place only when complete. On object storage, where there is no rename, it is written to a
local temporary file and uploaded whole: the object appears only once complete.

A run folder and its parts are ``pathlib.Path`` on a local file system, and ``upath.UPath``
(universal-pathlib: the same API over fsspec) at an fsspec URL; ``run_path`` makes either."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path


TMP_MARK = ".tmp-"  # in the names of files being written: .<name>.tmp-<pid>


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def run_path(path) -> Path:
    """A local ``Path`` (also for ``file://``), or a ``UPath`` for any other fsspec URL."""
    if isinstance(path, Path):
        return path
    text = str(path)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    if _URL.match(text):
        from upath import UPath

        return UPath(text)
    return Path(text)


def is_remote(path) -> bool:
    """Whether ``path`` is on a filesystem other than the local one (object storage, memory://)."""
    return getattr(path, "protocol", "") not in ("", "file", "local") or (isinstance(path, str) and _URL.match(path)
                                                                         is not None and not path.startswith("file://"))


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary local path; it becomes ``path`` if the block succeeds: renamed next to
    it on a local file system, uploaded whole to object storage."""
    path = run_path(path)
    if is_remote(path):
        with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
            tmp = Path(folder) / path.name
            yield tmp
            path.fs.put_file(str(tmp), path.path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path):
    """Yields a temporary local folder; it becomes the folder ``path`` if the block succeeds. On a
    local file system the old folder is renamed aside (``.NAME.old``, which ``settled_dir`` falls
    back to should a process die between the two renames), the new one renamed in, the old one
    removed; on object storage the folder is uploaded whole."""
    path = run_path(path)
    if is_remote(path):
        with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
            yield Path(folder)
            for file in Path(folder).iterdir():
                path.fs.put_file(str(file), f"{path.path}/{file.name}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}"), path.with_name(f".{path.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():  # else ``old`` is the folder itself (a swap cut short): kept until the new one is in
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def settled_dir(path):
    """The folder ``atomic_dir`` wrote at ``path``; its previous version if a process died while
    swapping them; ``path`` itself (absent) when there is neither."""
    path = run_path(path)
    old = path.with_name(f".{path.name}.old")
    return old if not is_remote(path) and not path.exists() and old.exists() else path


def write_json(path: str | os.PathLike, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with run_path(path).open("rb") as f:
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


def finished_files(folder, suffix: str) -> list[str]:
    """Names of the complete files with ``suffix`` in ``folder``, sorted (never a temporary
    left by a killed process)."""
    return sorted(p.name for p in run_path(folder).iterdir() if p.name.endswith(suffix) and not p.name.startswith("."))


@contextlib.contextmanager
def local_copy(path):
    """A local path to read ``path`` from: ``path`` itself, or for one on object storage a copy
    in a temporary folder (removed when the block ends)."""
    path = run_path(path)
    if not is_remote(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
        local = Path(folder) / path.name
        path.fs.get_file(path.path, str(local))
        yield local


@contextlib.contextmanager
def staged(folder):
    """A local folder to work in for ``folder``: ``folder`` itself, or for one on object storage
    a local mirror (``$CORPUS_CACHE/runs/<hash of the URL>``). The mirror starts as the stored
    folder (emptied when nothing is stored there; what is stored wins over a local copy of
    another size; a file only the mirror has stays, for a killed process to resume from), and
    every file of it that the store lacks or holds otherwise is uploaded when the block succeeds."""
    folder = run_path(folder)
    if not is_remote(folder):
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    import shutil

    cache = Path(os.environ.get("CORPUS_CACHE") or Path.home() / ".cache" / "corpus")
    local = cache / "runs" / hashlib.sha256(str(folder).encode()).hexdigest()[:16] / folder.name
    root = folder.path.rstrip("/")

    def stored() -> dict[str, int]:
        folder.fs.invalidate_cache()
        found = folder.fs.find(root, detail=True) if folder.fs.exists(root) else {}
        return {path[len(root) + 1:]: info.get("size") for path, info in found.items() if info.get("type") != "directory"}

    remote = stored()
    if not remote and local.exists():
        shutil.rmtree(local)  # a mirror of a run folder that is no longer there
    local.mkdir(parents=True, exist_ok=True)
    for rel, size in remote.items():
        dst = local / rel
        if not dst.exists() or dst.stat().st_size != size:
            dst.parent.mkdir(parents=True, exist_ok=True)
            folder.fs.get_file(f"{root}/{rel}", str(dst))
    before = {p: p.stat().st_mtime_ns for p in local.rglob("*") if p.is_file()}
    yield local
    for p in sorted(local.rglob("*")):
        rel = p.relative_to(local).as_posix()
        if p.is_file() and TMP_MARK not in p.name and (
                before.get(p) != p.stat().st_mtime_ns or remote.get(rel) != p.stat().st_size):
            folder.fs.put_file(str(p), f"{root}/{rel}")


def named_where_kept(result: dict, mirror, kept) -> dict:
    """A stage's result with the paths inside its local ``mirror`` (``staged``) named where they
    are kept (``kept``, on object storage)."""
    return {k: str(v).replace(str(mirror), str(kept)) if isinstance(v, (str, Path)) else v for k, v in result.items()}


def remove_tree(path) -> None:
    """A folder and everything in it, local or on object storage."""
    path = run_path(path)
    if is_remote(path):
        if path.exists():
            path.fs.rm(path.path, recursive=True)
    else:
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def remove_stale_temporaries(root: str | os.PathLike) -> int:
    """Delete the temporaries that killed processes left under ``root`` (``atomic_path``'s
    names); run at the start of a run, when nothing else writes there. Returns how many. (Object
    storage holds no temporaries: they are local files until uploaded.)"""
    if is_remote(run_path(root)):
        return 0
    removed = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.startswith(".") and TMP_MARK in name:
                os.unlink(os.path.join(dirpath, name))
                removed += 1
    return removed
