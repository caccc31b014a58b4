"""Runs a validated pipeline: the stages registered to run before the steps, the document
steps on a datatrove executor, then the stages after them (tokenizer, shards, train, ...), and
writes ``summary.json`` in the run folder.

Steps that must see every document before deciding (``minhash_dedup``) are *barriers*: the
runner ends the current executor job with the barrier's per-task stage, runs the barrier's
middle stages, then starts the next job with the barrier's filter. That job reads the input
again when only readers come before the barrier (as datatrove's own dedup does: the same
readers give the same documents in the same order); otherwise the first job also writes its
documents to ``work/`` (zstd) and the next one reads them, and ``work/`` is removed once every
job is done. Each job keeps datatrove's completion markers under ``logs/``, so a re-run skips
the tasks that finished.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from loguru import logger

from corpus import catalog, console, report
from corpus.config import ConfigError, PipelineConfig, RunError
from corpus.core import funnel, storage
from corpus.core.io import atomic_path, remove_stale_temporaries, remove_tree, run_path, write_json
from corpus.core.registry import RunContext
from corpus.core.rundir import RunDir
from corpus.readers import DeferredJsonlReader, InputError
from corpus.writers import JsonlWriter


@dataclass
class Job:
    """One executor run: its steps, the YAML index each step reports to, its task count."""

    name: str
    steps: list[PipelineStep]
    owners: list[int | None]  # YAML step index per step; None for the runner's own plumbing
    tasks: int | None = None  # None: the executor's
    side: bool = False  # a barrier's middle stage: it reads the barrier's files, not documents


@dataclass
class StepSummary:
    step: str
    index: int
    documents_in: int | None = 0  # None for a reader, which counts files
    documents_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    files: int | None = None
    lines_removed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)


def instantiate_steps(cfg: PipelineConfig) -> list[PipelineStep]:
    """Build every step now, so that bad parameters and missing inputs stop the run before work."""
    steps = []
    registry = catalog.steps()
    for sc in cfg.steps:
        cls = registry[sc.name]
        params = dict(sc.params)
        if "crawl" in cfg.stages and isinstance(params.get("paths"), list):
            # the crawl stage writes into the run folder: crawl/... means the run's crawl/ folder
            params["paths"] = [str(cfg.output_dir / p) if isinstance(p, str) and p.startswith("crawl/") else p
                               for p in params["paths"]]
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
        storage.apply(cfg.storage_options)  # before the readers list their inputs
        self.out = cfg.output_dir
        self.dir = RunDir(cfg.output_dir)  # the run folder's parts
        if self.dir.remote:  # object storage that does not answer, or refuses: one error before any work
            try:
                self.out.fs.invalidate_cache()
                self.out.exists()
            except Exception as e:  # noqa: BLE001  (network, credentials, permissions: said as they are)
                raise ConfigError(f"{cfg.source}: output_dir {str(self.out)!r} cannot be reached: "
                                  f"{type(e).__name__}: {e}") from None
        self.stages = [catalog.stages()[name] for name in cfg.stages]
        # a stage before the steps (the crawl) makes their input: build them after it has run
        self.steps = [] if any(st.before_steps for st in self.stages) else self.build_steps()
        self._check_executor()

    def build_steps(self) -> list[PipelineStep]:
        steps = instantiate_steps(self.cfg)
        for index, step in enumerate(steps):
            step.yaml_index = index  # the runner's own steps (writers it adds) get None
        if any(st.reads_documents for st in self.stages) and not any(getattr(s, "output_param", None) for s in steps):
            # a stage reads the curated documents: keep them
            steps.append(JsonlWriter(str(self.dir.docs)))
            steps[-1].yaml_index = None
        if self.cfg.save_raw:  # documents as read and extracted, before any filter: what `corpus ablate` trains on as raw
            head = 0
            while head < len(steps) and (getattr(steps[head], "is_reader", False) or getattr(steps[head], "makes_text", False)):
                head += 1
            steps.insert(head, JsonlWriter(str(self.dir.raw)))
            steps[head].yaml_index = None
        return steps

    # ------------------------------------------------------------ executors
    def _check_executor(self):
        ex = self.cfg.executor
        if ex["type"] == "slurm" and any(not st.before_steps for st in self.stages):
            raise ConfigError(
                f"{self.cfg.source}: the slurm executor submits jobs and returns; run the "
                f"{', '.join(st.name for st in self.stages if not st.before_steps)} stages afterwards with the "
                "local executor (remove them from this file)"
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
        if "workers" in ex and ex["workers"] > 0:
            ex["workers"] = min(ex["workers"], ex["tasks"])
            if self.cfg.executor["type"] == "local" and self.cfg.executor["workers"] > 1:
                # datatrove runs a job of one worker inline: a one-task stage (dedup's clusters) would
                # leave its memory in the runner's process for the rest of the run; a pool of two
                # runs it in a worker process that exits with it
                ex["workers"] = max(2, ex["workers"])
        ex["logging_dir"] = str(self.dir.job_logs(job.name))
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
                folder = self.dir.dedup(segment)
                first, middle, last = step.stages(str(folder))
                if steps and all(getattr(s, "is_reader", False) for s in steps):
                    # only readers before the barrier: the job after it reads the input again, in
                    # the same order (as datatrove's own dedup does), instead of a copy in work/
                    plan.append(Job(f"{segment:02d}-steps", steps + [first], owners + [owner]))
                    after = [copy.deepcopy(s) for s in steps] + [step.renumber()]
                else:
                    work = self.dir.work(segment)
                    plan.append(Job(f"{segment:02d}-steps", steps + [first, JsonlWriter(str(work), compression="zstd")],
                                    owners + [owner, None]))
                    after = [DeferredJsonlReader([str(work / "*.jsonl.zst")])]
                for k, (stage, tasks) in enumerate(middle):
                    plan.append(Job(f"{segment:02d}-{step.yaml_name}-{k + 1}", [stage], [owner], tasks=tasks, side=True))
                segment += 1
                steps, owners = after + [last], [None] * len(after) + [owner]
                continue
            steps.append(step)
            owners.append(owner)
        plan.append(Job(f"{segment:02d}-steps", steps, owners))
        for job in plan:  # a counter after each job's reader feeds the progress display
            if not job.side:
                job.steps.insert(1, console.ProgressCounter(str(self.dir.job_logs(job.name) / "progress")))
                job.owners.insert(1, None)
        if self.cfg.save_removed:
            for job in plan:
                for step, owner in zip(job.steps, job.owners):
                    if isinstance(step, BaseFilter) and owner is not None:
                        name = self.cfg.steps[owner].name
                        step.exclusion_writer = JsonlWriter(str(self.dir.removed_by(owner, name)))
        for job in plan:  # a step that lists what it found (decontaminate) writes it per task here
            for step, owner in zip(job.steps, job.owners):
                if hasattr(step, "match_folder") and owner is not None:
                    step.match_folder = str(self.dir.decontamination_parts(owner))
        return plan

    def run_steps(self) -> tuple[list[StepSummary], float]:
        start = time.time()
        parts: dict[int, list] = {}
        jobs = self.plan()
        if self.cfg.executor["type"] == "slurm":
            # Slurm runs the jobs later, each after the one before: chain them and submit
            executor = None
            for job in jobs:
                executor = self._executor_class()(pipeline=job.steps, depends=executor, **self._executor_options(job))
            executor.run()
            logger.success(f"corpus: submitted {len(jobs)} Slurm jobs; logs and stats under {self.dir.logs}")
            return self._summaries(parts), time.time() - start
        self._share_models(jobs)
        if self.cfg.executor["type"] == "ray":
            import ray

            if not ray.is_initialized():
                # an existing cluster (address, or RAY_ADDRESS), else a local one on this machine
                ray.init(address=self.cfg.executor.get("address"), include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": storage.environment(self.cfg.storage_options)})
        for job in jobs:
            logger.debug(f"corpus: job {job.name}: {' → '.join(type(s).__name__ for s in job.steps)}")
            executor = self._make_executor(job)
            logs = self.dir.job_logs(job.name)
            try:
                with console.JobProgress(job.name, executor.world_size, logs, None if job.side else logs / "progress"), \
                        console.job_output(logs / "console.log"):
                    executor.run()
            except Exception as e:
                raise RunError(f"job {job.name} failed: {type(e).__name__}: {e}. The task logs are in "
                               f"{logs / 'logs'} (and {logs / 'console.log'}); fix the cause and run the same command "
                               "again: finished tasks are kept") from e
            self._account(job, self._job_stats(job), parts)
        if self.dir.work().is_dir():  # every job is done: the copies between them are not needed again
            remove_tree(self.dir.work())
        self._gather_matches()
        return self._summaries(parts), time.time() - start

    def _gather_matches(self) -> None:
        """The tasks' match lists (a finished task's stay from an earlier try) into one file."""
        parts = sorted(self.dir.decontamination_parts().glob("*/[!.]*.jsonl"))
        if not parts:
            return
        with atomic_path(self.dir.decontamination_file) as tmp, open(tmp, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out)

    def run_job(self, name: str, steps: list[PipelineStep], tasks: int, logs: Path) -> None:
        """Run a stage's steps as ``tasks`` tasks of this run's executor (type and options), with
        its logs and completion markers under ``logs``."""
        job = Job(name, steps, [None] * len(steps), tasks=tasks, side=True)
        options = self._executor_options(job)
        options["logging_dir"] = str(logs / name)
        executor = self._executor_class()(pipeline=steps, **options)
        with console.JobProgress(name, executor.world_size, logs / name, None), console.job_output(logs / "console.log"):
            executor.run()

    def _share_models(self, jobs: list[Job]) -> None:
        """Local workers are forked from datatrove's forkserver: the modules that steps name in
        ``forkserver_preload`` (a large read-only model, loaded at import) are imported there
        once, before the first worker, so that the workers share the model's memory instead of
        each loading a copy. Must run before the forkserver starts (the first job's pool)."""
        ex = self.cfg.executor
        if ex["type"] != "local" or ex.get("workers", -1) == 1 or ex.get("start_method", "forkserver") != "forkserver":
            return
        modules = sorted({m for job in jobs for s in job.steps for m in getattr(s, "forkserver_preload", ())})
        if modules:
            import multiprocess

            multiprocess.get_context("forkserver").set_forkserver_preload(modules)

    def _job_stats(self, job: Job) -> list[tuple[float, dict[str, int]]]:
        """(seconds, counters) per step of a job, summed over its tasks' stats files (read
        directly: datatrove's Stats.from_dict leaves counters as raw dicts). A task that saw no
        document has a step without stats: it adds nothing."""
        merged: list[tuple[float, dict[str, int]]] = [(0.0, {}) for _ in job.steps]
        for path in sorted(self.dir.job_logs(job.name).glob("stats/*.json")):
            with path.open() as f:
                entries = json.load(f)
            for i, entry in enumerate(entries[: len(merged)]):
                seconds, counts = merged[i]
                for k, v in (entry.get("stats") or {}).items():
                    counts[k] = counts.get(k, 0) + int(v["total"] if isinstance(v, dict) else v)
                time_stats = entry.get("time_stats") or {}
                seconds += float(time_stats.get("total", 0.0) if isinstance(time_stats, dict) else time_stats)
                merged[i] = (seconds, counts)
        return merged

    def _account(self, job: Job, stats: list, parts: dict[int, list]) -> None:
        """File each step's stats under the YAML step that owns it."""
        for owner, (seconds, counts) in zip(job.owners, stats):
            if owner is not None:
                parts.setdefault(owner, []).append((job.side, seconds, counts))

    def _summaries(self, parts: dict[int, list]) -> list[StepSummary]:
        """The funnel of every YAML step, read through the funnel contract."""
        summaries = []
        by_index = {s.yaml_index: s for s in self.steps if s.yaml_index is not None}
        for sc in self.cfg.steps:
            step = by_index[sc.index]
            group = parts.get(sc.index, [])
            c = funnel.counts([counts for side, _, counts in group if not side], reader=getattr(step, "is_reader", False))
            for name, value in funnel.other_counters([counts for side, _, counts in group if side]).items():
                c.counters[name] = c.counters.get(name, 0) + value
            summaries.append(StepSummary(sc.name, sc.index, c.documents_in, c.documents_out, c.dropped, c.skipped,
                                         c.files, c.lines_removed, round(sum(seconds for _, seconds, _ in group), 3),
                                         c.counters))
        return summaries

    # ------------------------------------------------------------ everything
    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        resolved = yaml.safe_dump(storage.redacted(self.cfg.raw), sort_keys=False, allow_unicode=True)
        previous = self.dir.pipeline_file
        if previous.exists() and previous.read_text() != resolved and self.dir.logs.exists():
            logger.warning(f"corpus: {self.out} holds a run of a different configuration; its finished tasks are "
                           "reused (datatrove's completion markers). Use a new output_dir to start over.")
        previous.write_text(resolved)
        stale = remove_stale_temporaries(self.out)
        if stale:
            logger.info(f"corpus: removed {stale} unfinished temporary files left by an interrupted run")
        t0 = time.time()
        results: dict[str, dict] = {}
        self.run_stages(before_steps=True, results=results)
        if not self.steps:
            try:
                self.steps = self.build_steps()
            except ConfigError as e:
                raise RunError(str(e)) from None
        summaries, steps_seconds = self.run_steps()
        docs = self._docs_dir()
        summary = {
            "name": self.cfg.name,
            "output_dir": str(self.out),
            "executor": self.cfg.executor,
            "steps": [asdict(s) for s in summaries],
            "steps_wall_seconds": round(steps_seconds, 2),
            "stages": results,
            "docs": str(docs) if self.dir.remote else os.path.abspath(docs),  # the curated documents (RunDir.curated_docs)
        }
        print_funnel(summary)
        write_json(self.dir.summary_file, summary)
        if summaries and summaries[-1].documents_out == 0:
            readers = [st.name for st in self.stages if st.reads_documents]
            if readers:
                raise RunError(f"every document was dropped; see the funnel above. The {', '.join(readers)} "
                               f"stage{'s' if len(readers) > 1 else ''} cannot run without documents")
            logger.warning("corpus: every document was dropped; see the funnel above")
        self.run_stages(before_steps=False, results=results)
        summary["wall_seconds"] = round(time.time() - t0, 2)
        write_json(self.dir.summary_file, summary)
        try:
            logger.info(f"corpus: report {report.write_report(self.out)}")
        except Exception as e:  # the run's data is complete; a report can be written again with `corpus report`
            logger.error(f"corpus: the report could not be written ({type(e).__name__}: {e}); "
                         f"the run's output is complete. Try `corpus report {self.out}`")
        logger.success(f"corpus: run {self.cfg.name} finished in {summary['wall_seconds']:.1f}s; summary: {self.dir.summary_file}")
        return summary

    def run_stages(self, before_steps: bool, results: dict[str, dict]) -> None:
        """The configured stages on one side of the steps, in order; each result is recorded."""
        for stage in self.stages:
            if stage.before_steps == before_steps:
                ctx = RunContext(self.out, self._docs_dir(), storage.redacted(self.cfg.raw), results, executor=self.run_job)
                try:
                    results[stage.name] = stage.run(ctx, self.cfg.stages[stage.name])
                except (ValueError, OSError) as e:
                    raise RunError(f"the {stage.name} stage cannot run: {e}") from e

    def _docs_dir(self) -> Path:
        writers = [s for s in self.steps if isinstance(s, JsonlWriter)]
        if writers:
            return run_path(writers[-1].path)
        others = [s for s in self.steps if getattr(s, "output_param", None)]
        return run_path(others[-1].path) if others else self.dir.docs


def print_funnel(summary: dict) -> None:
    lines = [f"{'step':<22}{'in':>9}{'out':>9}{'seconds':>10}  dropped / skipped (seconds: summed over tasks)"]
    for s in summary["steps"]:
        def by_count(d):
            return sorted(d.items(), key=lambda kv: -kv[1])

        encodings = {k.removeprefix("encoding_"): v for k, v in s["counters"].items() if k.startswith("encoding_")}
        reasons = ", ".join([f"{k}={v}" for k, v in by_count(s["dropped"])] +
                            [f"skipped {k}={v}" for k, v in by_count(s["skipped"])] +
                            [f"lines removed {k}={v}" for k, v in by_count(s["lines_removed"])])
        if encodings:
            reasons += ("; " if reasons else "") + "encodings " + ", ".join(f"{k}={v}" for k, v in by_count(encodings))
        doc_in = f"{s['files']} files" if s["documents_in"] is None else s["documents_in"]
        lines.append(f"{s['step']:<22}{doc_in:>9}{s['documents_out']:>9}{s['seconds']:>10.1f}  {reasons}")
    print("\n".join(lines), flush=True)
