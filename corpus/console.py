"""What a person sees while a pipeline runs: one live progress bar per job (tqdm: tasks done,
documents read, documents/s, elapsed, ETA), our own messages, then the funnel.

datatrove's executors log every task (its pipeline, its stats) to the process's standard
error, from every worker process. Unless ``-v`` is given, the runner sends file descriptor 2 to
``logs/<job>/console.log`` while a job runs (worker processes inherit it), so those lines are
kept, not shown; our messages go to the terminal through a copy of the original descriptor.
Output to a non-terminal (CI, a pipe) gets one plain line per job instead of a live bar.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from loguru import logger

from corpus.core.io import atomic_path, is_remote, run_path

_state = {"verbose": False, "term": None}
FORMAT = "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"


def terminal():
    """Where our messages and progress go: the standard error the program started with."""
    if _state["term"] is None:
        _state["term"] = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    return _state["term"]


def setup(verbose: bool = False) -> None:
    import datatrove.utils.logging  # noqa: F401  (its import resets loguru's sinks: let it happen first)

    _state["verbose"] = verbose
    restore_logging()


def restore_logging() -> None:
    """Our log sink on the terminal (datatrove's task loggers replace every sink while they run)."""
    logger.remove()
    logger.add(terminal(), level="DEBUG" if _state["verbose"] else "INFO", format=FORMAT,
               colorize=terminal().isatty())


@contextlib.contextmanager
def job_output(log_file: Path):
    """While a job runs, descriptor 2 (datatrove's logs, in every task process) goes to
    ``log_file``; with ``-v`` it stays on the terminal."""
    if _state["verbose"]:
        try:
            yield
        finally:
            restore_logging()
        return
    terminal()  # keep a handle on the real standard error before redirecting it
    remote = is_remote(log_file)
    if remote:
        fd, name = tempfile.mkstemp(prefix="corpus-console-")
        os.close(fd)
        local = Path(name)
    else:
        local = log_file
    if remote and log_file.exists():  # on object storage the log of an earlier try is appended to, here
        local.write_bytes(log_file.read_bytes())
    local.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(local, "ab") as log:
        os.dup2(log.fileno(), 2)
        logger.remove()  # the executor's own summary, in this process, goes to the file too
        logger.add(sys.stderr, level="DEBUG")
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            restore_logging()
    if remote:
        log_file.fs.put_file(str(local), log_file.path)
        local.unlink()


class ProgressCounter(PipelineStep):
    """The runner's plumbing (not a YAML step): counts the documents that pass and writes the
    count to ``<folder>/<rank>`` twice a second (every 5 s on object storage), for the progress display."""

    name = "progress"
    type = "📊 - PROGRESS"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder
        self.every = 5.0 if is_remote(folder) else 0.5  # seconds between writes (on object storage, one PUT each)

    def _write(self, rank: int, n: int) -> None:
        with atomic_path(run_path(self.folder) / f"{rank:05d}") as tmp:
            tmp.write_text(json.dumps({"documents": n}))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        n, last = 0, time.monotonic()
        for doc in data:
            n += 1
            if time.monotonic() - last > self.every:
                self._write(rank, n)
                last = time.monotonic()
            yield doc
        self._write(rank, n)


class JobProgress:
    """A live bar for one executor job, fed by polling its completion markers and counters."""

    def __init__(self, name: str, tasks: int, logging_dir: Path, progress_dir: Path | None):
        self.name, self.tasks, self.logging_dir, self.progress_dir = name, tasks, logging_dir, progress_dir
        self._stop = threading.Event()
        self._thread = None
        self.start = time.time()

    def _poll(self) -> tuple[int, int]:
        done_dir = self.logging_dir / "completions"
        done = len(list(done_dir.iterdir())) if done_dir.is_dir() else 0
        docs = 0
        if self.progress_dir is not None and self.progress_dir.is_dir():
            for f in self.progress_dir.iterdir():
                if not f.name.startswith("."):
                    with contextlib.suppress(OSError, ValueError):
                        docs += json.loads(f.read_text())["documents"]
        return min(done, self.tasks), docs

    def _loop(self, bar) -> None:
        while not self._stop.wait(5.0 if is_remote(self.logging_dir) else 0.5):
            self._update(bar)

    def _update(self, bar) -> None:
        done, docs = self._poll()
        bar.n = done
        if self.progress_dir is not None:
            elapsed = max(1e-9, time.time() - self.start)
            bar.set_postfix_str(f"{docs:,} docs, {docs / elapsed:,.0f} docs/s", refresh=False)
        bar.refresh()

    def __enter__(self):
        from tqdm import tqdm

        self.done_at_start = self._poll()[0]  # finished by an earlier run: skipped (datatrove's markers)
        term = terminal()
        width = shutil.get_terminal_size().columns or 100  # a pseudo-terminal may report 0
        self.bar = tqdm(total=self.tasks, desc=f"job {self.name}", unit="task", file=term, leave=True,
                        disable=not term.isatty(), ncols=min(width, 120))
        if not self.bar.disable:
            self._thread = threading.Thread(target=self._loop, args=(self.bar,), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        done, docs = self._poll()
        if self.bar.disable:
            documents = f", {docs:,} documents" if self.progress_dir is not None else ""
            resumed = f" ({self.done_at_start} already done in an earlier run)" if self.done_at_start else ""
            print(f"job {self.name}: {done}/{self.tasks} tasks{documents}, {time.time() - self.start:.1f}s{resumed}",
                  file=terminal(), flush=True)
        else:
            self._update(self.bar)
        self.bar.close()
        return False
