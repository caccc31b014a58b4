"""Runs a validated pipeline: the document steps on a datatrove executor, then the optional
tokenizer, shards and train stages, and writes ``summary.json`` in the run folder.

Steps that must see every document before deciding (``minhash_dedup``) are *barriers*: the
runner ends the current executor job with the barrier's per-task stage and a writer to
``work/``, runs the barrier's single-task stage, then starts the next job by reading ``work/``
and applying the barrier's filter. Each job keeps datatrove's completion markers under
``logs/``, so a re-run skips the tasks that finished.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from loguru import logger

from corpus.config import ConfigError, PipelineConfig
from corpus.io import write_json
from corpus.readers import DeferredJsonlReader, InputError
from corpus.registry import STEPS
from corpus.writers import JsonlWriter


@dataclass
class Job:
    """One executor run: its steps, the YAML index each step reports to, its task count."""

    name: str
    steps: list[PipelineStep]
    owners: list[int | None]  # YAML step index per step; None for the runner's own plumbing
    tasks: int | None = None  # None: the executor's


@dataclass
class StepSummary:
    step: str
    index: int
    documents_in: int = 0
    documents_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)


def instantiate_steps(cfg: PipelineConfig) -> list[PipelineStep]:
    """Build every step now, so that bad parameters and missing inputs stop the run before work."""
    steps = []
    for sc in cfg.steps:
        cls = STEPS[sc.name]
        params = dict(sc.params)
        out_param = getattr(cls, "output_param", None)
        if out_param:
            value = params.get(out_param, "docs")
            params[out_param] = value if "://" in value or os.path.isabs(value) else str(cfg.output_dir / value)
        try:
            step = cls(**params)
        except (InputError, ValueError, TypeError, FileNotFoundError, ImportError) as e:
            raise ConfigError(f"{cfg.source}: step {sc.index + 1} {sc.name!r}: {e}") from None
        steps.append(step)
    return steps


class Runner:
    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.out = cfg.output_dir
        self.steps = instantiate_steps(cfg)
        if cfg.tokenizer is not None and not any(getattr(s, "output_param", None) for s in self.steps):
            # the tokenizer trains on the curated documents: keep them
            self.steps.append(JsonlWriter(str(self.out / "docs")))
            self.steps[-1].yaml_index = None
        self._check_executor()

    # ------------------------------------------------------------ executors
    def _check_executor(self):
        ex = self.cfg.executor
        if ex["type"] == "slurm" and (self.cfg.tokenizer or self.cfg.shards or self.cfg.train):
            raise ConfigError(
                f"{self.cfg.source}: the slurm executor submits jobs and returns; run the tokenizer, shards "
                "and train stages afterwards with the local executor (remove them from this file)"
            )
        self._executor_options(Job("check", [], []))  # bad options fail now, not after hours of work

    def _executor_class(self):
        kind = self.cfg.executor["type"]
        if kind == "local":
            from datatrove.executor import LocalPipelineExecutor

            return LocalPipelineExecutor
        if kind == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise ConfigError(f"{self.cfg.source}: executor type 'ray' needs Ray: pip install 'corpus[ray]'") from None
            from datatrove.executor import RayPipelineExecutor

            return RayPipelineExecutor
        from datatrove.executor import SlurmPipelineExecutor

        return SlurmPipelineExecutor

    def _executor_options(self, job: Job) -> dict:
        import inspect

        ex = dict(self.cfg.executor)
        ex.pop("type")
        ex.pop("address", None)  # ray: where the cluster is (consumed by the runner)
        cls = self._executor_class()
        ex["tasks"] = job.tasks if job.tasks is not None else ex.get("tasks", 1)
        if "workers" in ex:
            ex["workers"] = min(ex["workers"], ex["tasks"]) if ex["workers"] > 0 else ex["workers"]
        ex["logging_dir"] = str(self.out / "logs" / job.name)
        params = inspect.signature(cls.__init__).parameters
        unknown = [k for k in ex if k not in params]
        if unknown:
            raise ConfigError(
                f"{self.cfg.source}: executor option {unknown[0]!r} is unknown for {self.cfg.executor['type']}. "
                f"Valid options: {', '.join(p for p in params if p not in ('self', 'pipeline'))}"
            )
        return ex

    def _make_executor(self, job: Job):
        return self._executor_class()(pipeline=job.steps, **self._executor_options(job))

    # ------------------------------------------------------------ jobs
    def plan(self) -> list[Job]:
        """Split the steps at barriers into executor jobs."""
        plan, steps, owners = [], [], []
        segment = 0
        for index, step in enumerate(self.steps):
            owner = getattr(step, "yaml_index", index)
            if getattr(step, "barrier", False):
                folder = self.out / ("dedup" if segment == 0 else f"dedup-{segment + 1}")
                first, middle, last = step.stages(str(folder))
                work = self.out / "work" / f"{segment:02d}"
                plan.append(Job(f"{segment:02d}-steps", steps + [first, JsonlWriter(str(work))], owners + [owner, None]))
                for k, (stage, tasks) in enumerate(middle):
                    plan.append(Job(f"{segment:02d}-{step.yaml_name}-{k + 1}", [stage], [owner], tasks=tasks))
                segment += 1
                steps, owners = [DeferredJsonlReader([str(work / "*.jsonl.gz")]), last], [None, owner]
                continue
            steps.append(step)
            owners.append(owner)
        plan.append(Job(f"{segment:02d}-steps", steps, owners))
        if self.cfg.save_removed:
            for job in plan:
                for step, owner in zip(job.steps, job.owners):
                    if isinstance(step, BaseFilter) and owner is not None:
                        name = self.cfg.steps[owner].name
                        step.exclusion_writer = JsonlWriter(str(self.out / "removed" / f"{owner + 1:02d}-{name}"))
        return plan

    def run_steps(self) -> tuple[list[StepSummary], float]:
        start = time.time()
        summaries = [StepSummary(sc.name, sc.index) for sc in self.cfg.steps]
        jobs = self.plan()
        if self.cfg.executor["type"] == "slurm":
            # Slurm runs the jobs later, each after the one before: chain them and submit
            executor = None
            for job in jobs:
                executor = self._executor_class()(pipeline=job.steps, depends=executor, **self._executor_options(job))
            executor.run()
            logger.success(f"corpus: submitted {len(jobs)} Slurm jobs; logs and stats under {self.out / 'logs'}")
            return summaries, time.time() - start
        if self.cfg.executor["type"] == "ray":
            import ray

            if not ray.is_initialized():
                # an existing cluster (address, or RAY_ADDRESS), else a local one on this machine
                ray.init(address=self.cfg.executor.get("address"), include_dashboard=False, log_to_driver=False)
        for job in jobs:
            logger.info(f"corpus: job {job.name}: {' → '.join(type(s).__name__ for s in job.steps)}")
            job_start = time.time()
            self._make_executor(job).run()
            stats = self._job_stats(job)
            self._account(job, stats, summaries)
            logger.info(f"corpus: job {job.name} done in {time.time() - job_start:.1f}s")
        return summaries, time.time() - start

    def _job_stats(self, job: Job) -> list[tuple[float, dict[str, int]]]:
        """(seconds, counters) per step of a job, summed over its tasks' stats files
        (read directly: datatrove's Stats.from_dict leaves counters as raw dicts)."""
        merged: list[tuple[float, dict[str, int]]] = [(0.0, {}) for _ in job.steps]
        for path in sorted(glob.glob(str(self.out / "logs" / job.name / "stats" / "*.json"))):
            with open(path) as f:
                entries = json.load(f)
            for i, entry in enumerate(entries[: len(merged)]):
                seconds, counts = merged[i]
                for k, v in entry.get("stats", {}).items():
                    counts[k] = counts.get(k, 0) + int(v["total"] if isinstance(v, dict) else v)
                merged[i] = (seconds + float(entry.get("time_stats", {}).get("total", 0.0)), counts)
        return merged

    @staticmethod
    def _account(job: Job, stats: list, summaries: list[StepSummary]) -> None:
        by_owner: dict[int, list] = {}
        for owner, st in zip(job.owners, stats):
            if owner is not None:
                by_owner.setdefault(owner, []).append(st)
        for owner, group in by_owner.items():
            s = summaries[owner]
            for seconds, counts in group:
                s.seconds += seconds
                if "documents" in counts and "total" not in counts:  # a reader
                    s.documents_out += counts["documents"]
                for k, v in counts.items():
                    if k.startswith(("dropped_", "skipped_")):
                        reason = k.split("_", 1)[1]
                        s.dropped[reason] = s.dropped.get(reason, 0) + v
                    elif k not in ("total", "forwarded", "dropped", "documents", "doc_len", "doc_len_tokens") \
                            and "/" not in k:
                        s.counters[k] = s.counters.get(k, 0) + v
            first, last = group[0][1], group[-1][1]
            if "total" in first and not s.documents_in:
                s.documents_in = first["total"]
            if "total" in last:
                s.documents_out = last.get("forwarded", last["total"] if "dropped" not in last else 0)

    # ------------------------------------------------------------ everything
    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        resolved = yaml.safe_dump(self.cfg.raw, sort_keys=False, allow_unicode=True)
        previous = self.out / "pipeline.yaml"
        if previous.exists() and previous.read_text() != resolved and (self.out / "logs").exists():
            logger.warning(f"corpus: {self.out} holds a run of a different configuration; its finished tasks are "
                           "reused (datatrove's completion markers). Use a new output_dir to start over.")
        previous.write_text(resolved)
        t0 = time.time()
        summaries, steps_seconds = self.run_steps()
        summary = {
            "name": self.cfg.name,
            "output_dir": str(self.out),
            "executor": self.cfg.executor,
            "steps": [asdict(s) for s in summaries],
            "steps_wall_seconds": round(steps_seconds, 2),
            "stages": {},
        }
        print_funnel(summary)
        docs_dir = self._docs_dir()
        if self.cfg.tokenizer is not None:
            from tokenizer.train import train_tokenizer

            summary["stages"]["tokenizer"] = train_tokenizer(docs_dir, self.out / "tokenizer", self.cfg.tokenizer)
        if self.cfg.shards is not None:
            from tokenizer.encode import write_shards

            summary["stages"]["shards"] = write_shards(
                docs_dir, self.out / "tokenizer" / "tokenizer.model", self.out / "shards", self.cfg.shards,
                pipeline=self.cfg.raw,
            )
        if self.cfg.train is not None:
            from trainer.train import train

            summary["stages"]["train"] = train(self.out / "shards", self.out / "train", self.cfg.train)
        summary["wall_seconds"] = round(time.time() - t0, 2)
        write_json(self.out / "summary.json", summary)
        logger.success(f"corpus: run {self.cfg.name} finished in {summary['wall_seconds']:.1f}s; summary: {self.out / 'summary.json'}")
        return summary

    def _docs_dir(self) -> Path:
        writers = [s for s in self.steps if isinstance(s, JsonlWriter)]
        if writers:
            return Path(writers[-1].path)
        others = [s for s in self.steps if getattr(s, "output_param", None)]
        return Path(others[-1].path) if others else self.out / "docs"


def print_funnel(summary: dict) -> None:
    lines = [f"{'step':<22}{'in':>9}{'out':>9}{'seconds':>10}  dropped / skipped (seconds: summed over tasks)"]
    for s in summary["steps"]:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(s["dropped"].items(), key=lambda kv: -kv[1]))
        files = s["counters"].get("files")
        doc_in = f"{files} files" if files is not None and not s["documents_in"] else s["documents_in"]
        lines.append(f"{s['step']:<22}{doc_in:>9}{s['documents_out']:>9}{s['seconds']:>10.1f}  {reasons}")
    print("\n".join(lines), flush=True)
