"""The run folder's layout, named in one place.

Every module that reads or writes a part of a run folder asks ``RunDir`` for its path (the
runner, the stages, the report, ``corpus ablate``, the crawler); none joins the names itself.
DESIGN.md's tree of the run folder is this type's documentation. A stage's own folder
(``tokenizer/``, ``shards/``, ``train/``, ``crawl/``) is that stage's to lay out inside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from corpus.core.io import is_remote, run_path


@dataclass(frozen=True)
class RunDir:
    """``root`` is a local folder or an fsspec URL (``s3://bucket/run``): every part is then a
    ``UPath`` with pathlib's API."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", run_path(self.root))

    @property
    def remote(self) -> bool:
        return is_remote(self.root)

    # ------------------------------------------------------------ files at the top
    @property
    def pipeline_file(self) -> Path:
        """The resolved configuration, as run."""
        return self.root / "pipeline.yaml"

    @property
    def summary_file(self) -> Path:
        return self.root / "summary.json"

    @property
    def report_file(self) -> Path:
        return self.root / "report.html"

    # ------------------------------------------------------------ documents
    @property
    def docs(self) -> Path:
        """Where the curated documents go when the steps name no writer of their own."""
        return self.root / "docs"

    @property
    def raw(self) -> Path:
        """Documents as read and extracted, before any filter (``save_raw``)."""
        return self.root / "raw"

    @property
    def removed(self) -> Path:
        return self.root / "removed"

    def removed_by(self, index: int, step: str) -> Path:
        """What the YAML's step ``index`` (from 0) dropped, with ``save_removed``."""
        return self.removed / f"{index + 1:02d}-{step}"

    def work(self, segment: int | None = None) -> Path:
        """Documents between the jobs a barrier separates (removed when the run ends)."""
        return self.root / "work" if segment is None else self.root / "work" / f"{segment:02d}"

    def dedup(self, segment: int = 0) -> Path:
        """The files of the run's ``segment``-th barrier step (0: ``dedup/``, then ``dedup-2/``...)."""
        return self.root / ("dedup" if segment == 0 else f"dedup-{segment + 1}")

    @property
    def clusters_file(self) -> Path:
        return self.dedup(0) / "clusters.jsonl"

    @property
    def decontamination_file(self) -> Path:
        """Every evaluation-text match of the run's ``decontaminate`` steps, one JSON line each."""
        return self.root / "decontamination.jsonl"

    def decontamination_parts(self, index: int | None = None) -> Path:
        """Where the tasks of the YAML's step ``index`` write their matches (gathered into
        ``decontamination_file`` when the steps end)."""
        folder = self.root / "decontamination"
        return folder if index is None else folder / f"{index + 1:02d}"

    # ------------------------------------------------------------ stages
    @property
    def crawl(self) -> Path:
        return self.root / "crawl"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def tokenizer_model(self) -> Path:
        return self.tokenizer / "tokenizer.model"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def train(self) -> Path:
        return self.root / "train"

    def post_training(self, stage: str) -> Path:
        """A post-training stage's folder: ``sft/``, ``reward/`` or ``dpo/`` (checkpoint, card)."""
        return self.root / stage

    @property
    def ablation(self) -> Path:
        return self.root / "ablation"

    @property
    def ablation_log(self) -> Path:
        """What ``corpus ablate``'s encoding and training print, step by step (the terminal gets one line a model)."""
        return self.ablation / "console.log"

    # ------------------------------------------------------------ executors
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def job_logs(self, job: str) -> Path:
        """A job's executor logs, completion markers and stats."""
        return self.logs / job

    # ------------------------------------------------------------ reading a finished run
    def summary(self) -> dict:
        """summary.json, or {} when the run has not written one."""
        return json.loads(self.summary_file.read_text()) if self.summary_file.exists() else {}

    def curated_docs(self) -> Path:
        """The folder that holds the run's curated documents: the one its summary names (the
        last writer of the steps), else ``docs/``."""
        summary = self.summary()
        named = summary.get("docs") or (summary.get("stages", {}).get("tokenizer", {}).get("input") or [None])[0]
        if not named:
            return self.docs
        path = run_path(named)
        return path if is_remote(path) or path.is_absolute() or path.exists() else self.root / path
