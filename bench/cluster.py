"""Cluster benchmark: the same pipeline on the local executor, on a 1-node and a 2-node local Ray
cluster, and with its inputs on an S3 server or on local disk, in one run: seconds per 1,000
documents and what the overhead is spent on.

    python bench/cluster.py                          # every configuration at 1x and 4x the pages
    python bench/cluster.py --copies 1 --configs local-disk,ray2-disk
    python bench/cluster.py --pages 60 --copies 1,2 --no-wait    # a smoke run
    python bench/cluster.py report data/cluster/results-<stamp>.json   # the tables again

**S3** is moto's server (``moto_server``, ``tests.servers.S3Server``) on 127.0.0.1: no network
between the tasks and the objects, but every file is an HTTP request served by a Python process
that shares the machine's CPUs with the tasks. ``*-s3`` configurations read the inputs there;
``*-s3-out`` ones read them there and write the whole run folder there too (``output_dir:
s3://...``); the run folder is then copied back for the accounting, with the store's
LastModified times (1 s resolution) as the files' times.

**The pipeline** is ``pipelines/web.yaml``'s steps (html_extract ... minhash_dedup,
jsonl_writer; its stages after the steps, tokenizer and shards, left out) with a
``files_reader`` in place of the ``warc_reader``: the real pages are the 530 HTML files of the
Python documentation in ``../shared/data/sites/python-docs``, copied once into
``data/cluster/input/pages`` and hard-linked into ``input/x<N>/c0 ... c<N-1>``: a size of N
copies is N times the pages, each copy its own ids (``c1/library/os.html``), so that dedup
removes the copies (exact duplicates, as a crawl that meets a mirror does). Seconds per 1,000
documents at two sizes (``--copies``, default 1 and 4) separate what a run costs whatever its
size (the fixed part: a line through the two points) from what each document costs.

**Configurations** (``--configs``), the same steps and the same number of tasks (``--tasks``, 4):

- ``local-disk``, ``local-s3``: the local executor, 2 workers, inputs on disk / on the S3 server;
- ``ray1-disk``: Ray, one node (``ray start --head --num-cpus=2``);
- ``ray2-disk``, ``ray2-s3``: Ray, two nodes (a head and a worker of ``--num-cpus=1`` each), inputs
  on disk / on the S3 server;
- ``local-s3-out``, ``ray2-s3-out``: inputs and the run folder on the S3 server.

Ray runs use ``executor: {type: ray, address: 127.0.0.1:PORT, tasks: 4, cpus_per_task: 1,
mem_per_cpu_gb: 0.5}``; the nodes are started as tests/test_ray_cluster.py starts them (separate
``ray start`` processes, every node on 127.0.0.1, Ray's token authentication with one random
token for the nodes and the driver, no dashboard, a 150 MB object store); the nodes get the S3
server's environment (the tasks open the inputs, not the driver). ``ray stop --force`` ends
every cluster (and the bench, whatever happens); the S3 server is stopped too.

**Measured** per run: the wall seconds of ``corpus run`` (a subprocess; its report included) and
seconds per 1,000 input documents; the documents kept (sorted (id, text hash) of ``docs/``: every
configuration must keep what ``local-disk`` keeps, a warning row says where one does not). The
wall time is split with the run folder's own clocks (executor.json is written when a job starts,
stats.json when it ends, each task log holds the task's start and end):

- ``startup``: from the command's start to its first job (Python, imports, the steps and their
  models, listing the inputs; for Ray, connecting to the cluster);
- ``tasks``: the time within jobs when at least one task runs;
- ``idle``: the time within jobs when no task runs (local: the worker pool and forkserver; Ray:
  placement groups, actor processes, unpickling the pipeline and its models in each actor, the
  driver's 10 s polling);
- ``between``: between jobs (the runner's accounting, the next executor);
- ``finish``: after the last job (summary, report.html, exit).

They add up to the wall time. Besides: the longest task per job and ``job wall - longest task``
(the JSON), the steps' own seconds summed over tasks (``steps s``, from summary.json), the
reader's seconds (``read s``: where S3's GETs show, against the same executor on disk), and,
measured apart and not counted in any run, ``ray start`` of each node and a driver's ``import
ray`` + ``ray.init(address)``.

Before measuring, the bench waits (at most 20 minutes) until no pytest runs, no other Ray node
(raylet) runs, and the 1-minute load average is below 0.7. Runs get ``OMP_WAIT_POLICY=PASSIVE``.
``--repeat N`` runs each measurement N times and keeps medians. Results: the markdown tables on
stdout, the whole in ``data/cluster/results-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import require_shared  # noqa: E402

DATA = ROOT / "data" / "cluster"
WEB_YAML = ROOT / "pipelines" / "web.yaml"
BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
CORPUS = [str(BIN / "corpus")] if (BIN / "corpus").exists() else [sys.executable, "-m", "corpus.cli"]
SITE = "sites/python-docs"
CONFIGS = {
    "local-disk": ("local executor, 2 workers", "local", "disk"),
    "local-s3": ("local executor, 2 workers", "local", "s3"),
    "ray1-disk": ("Ray, 1 node (2 CPUs)", "ray1", "disk"),
    "ray2-disk": ("Ray, 2 nodes (1 + 1 CPUs)", "ray2", "disk"),
    "ray2-s3": ("Ray, 2 nodes (1 + 1 CPUs)", "ray2", "s3"),
    "local-s3-out": ("local executor, 2 workers", "local", "s3-out"),
    "ray2-s3-out": ("Ray, 2 nodes (1 + 1 CPUs)", "ray2", "s3-out"),
}
BASELINE = "local-disk"
NODE = ["--node-ip-address=127.0.0.1", "--object-store-memory=150000000", "--disable-usage-stats"]
BUCKET = "bench-inputs"
RUNS_BUCKET = "bench-runs"  # the run folders of the s3-out configurations
SECRET = "bench-cluster-" + secrets.token_hex(8)
PARTS = ("startup", "tasks", "idle", "between", "finish")
LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \|.* - (Launching pipeline|Processing done) for rank=(\d+)")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ===================================================================== the machine

def busy_reasons() -> list[str]:
    reasons = []
    if subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0:
        reasons.append("pytest runs")
    if subprocess.run(["pgrep", "-x", "raylet"], capture_output=True).returncode == 0:
        reasons.append("a Ray node (raylet) runs")
    load = os.getloadavg()[0]
    if load >= 0.7:
        reasons.append(f"load {load:.2f}")
    return reasons


def wait_idle(limit: float = 1200) -> dict:
    """Wait until the machine is idle (no pytest, no raylet, 1-minute load < 0.7), at most ``limit`` s."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime at start: {uptime}", flush=True)
    t0, last = time.time(), 0.0
    while (reasons := busy_reasons()) and time.time() - t0 < limit:
        if time.time() - last > 30:
            log(f"waiting for an idle machine ({', '.join(reasons)}; {time.time() - t0:.0f}s so far)")
            last = time.time()
        time.sleep(5)
    waited = round(time.time() - t0, 1)
    if reasons:
        log(f"WARNING: the machine is still busy after {waited}s ({', '.join(reasons)}); measuring anyway")
    return {"uptime": uptime, "waited_s": waited, "busy_when_started": reasons}


# ===================================================================== inputs

def build_inputs(pages: int | None, copies: list[int]) -> dict[int, dict]:
    """``input/pages``: the site's HTML files (the first ``pages`` in path order, or all);
    ``input/x<N>/c<k>``: hard links to them, N copies. Returns, per N, the folder and its files."""
    site = require_shared() / SITE
    files = sorted(p.relative_to(site) for p in site.rglob("*.html") if p.is_file())
    if pages:
        files = files[:pages]
    base = DATA / "input" / "pages"
    key = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:16]
    marker = base / f".built-{key}"
    if not marker.exists():
        shutil.rmtree(DATA / "input", ignore_errors=True)
        for rel in files:
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(site / rel, base / rel)
        marker.touch()
    out = {}
    for n in copies:
        folder = DATA / "input" / f"x{n}"
        if not (folder / f".built-{key}").exists():
            shutil.rmtree(folder, ignore_errors=True)
            for k in range(n):
                for rel in files:
                    dest = folder / f"c{k}" / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(base / rel, dest)
                    except OSError:
                        shutil.copyfile(base / rel, dest)
            (folder / f".built-{key}").touch()
        out[n] = {"folder": folder, "files": len(files) * n,
                  "mb": round(n * sum((base / rel).stat().st_size for rel in files) / 1e6, 1)}
    return out


def upload(s3, inputs: dict[int, dict]) -> float:
    fs = s3.fs(SECRET)
    t0 = time.time()
    fs.mkdir(BUCKET)
    for n, meta in inputs.items():
        fs.put(str(meta["folder"]) + "/", f"{BUCKET}/x{n}", recursive=True)
    listed = {n: len([p for p in fs.find(f"{BUCKET}/x{n}") if p.endswith(".html")]) for n in inputs}
    for n, meta in inputs.items():
        if listed[n] != meta["files"]:
            raise RuntimeError(f"S3 upload: {listed[n]} files under s3://{BUCKET}/x{n}, expected {meta['files']}")
    return round(time.time() - t0, 1)


def pattern(n: int, where: str) -> str:
    if where.startswith("s3"):
        return f"s3://{BUCKET}/x{n}/*/**/*.html"
    return str(DATA / "input" / f"x{n}") + "/*/**/*.html"


# ===================================================================== Ray clusters

def raylets() -> bool:
    return subprocess.run(["pgrep", "-x", "raylet"], capture_output=True).returncode == 0


def ray_stop(env: dict) -> None:
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=180, env=env)
    deadline = time.time() + 30
    while raylets() and time.time() < deadline:
        time.sleep(0.5)


def ray_start(env: dict, *args: str) -> float:
    t0 = time.time()
    r = subprocess.run([RAY, "start", *args], capture_output=True, text=True, timeout=180, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
    return round(time.time() - t0, 2)


PROBE = """
import json, sys, time
t0 = time.time()
import ray
t1 = time.time()
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)
t2 = time.time()
deadline = time.time() + 60
while ray.cluster_resources().get("CPU", 0) < float(sys.argv[2]) and time.time() < deadline:
    time.sleep(0.5)
res = ray.cluster_resources()
nodes = len([n for n in ray.nodes() if n["Alive"]])
ray.shutdown()
print(json.dumps({"import_s": round(t1 - t0, 2), "init_s": round(t2 - t1, 2), "cpus": res.get("CPU", 0), "nodes": nodes}))
"""


def start_cluster(kind: str, env: dict) -> dict:
    """A head (and, for ray2, a worker node) on 127.0.0.1; returns address and seconds."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    head_cpus = 2 if kind == "ray1" else 1
    info = {"address": address, "nodes": 1 if kind == "ray1" else 2}
    info["head_start_s"] = ray_start(env, "--head", f"--port={port}", "--include-dashboard=false",
                                     f"--num-cpus={head_cpus}", *NODE)
    if kind == "ray2":
        info["worker_start_s"] = ray_start(env, f"--address={address}", "--num-cpus=1", *NODE)
    r = subprocess.run([sys.executable, "-c", PROBE, address, "2"], capture_output=True, text=True, timeout=180, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"a driver could not connect to {address}:\n{r.stderr[-2000:]}")
    probe = json.loads(r.stdout.strip().splitlines()[-1])
    if probe["nodes"] != info["nodes"] or probe["cpus"] != 2:
        raise RuntimeError(f"the cluster at {address} has {probe['nodes']} nodes and {probe['cpus']} CPUs, "
                           f"expected {info['nodes']} and 2")
    info.update(connect_import_s=probe["import_s"], connect_init_s=probe["init_s"])
    info["start_s"] = round(info["head_start_s"] + info.get("worker_start_s", 0), 2)
    return info


# ===================================================================== one run

def write_pipeline(out: Path, name: str, paths: str, executor: dict) -> Path:
    cfg = yaml.safe_load(WEB_YAML.read_text())
    assert "warc_reader" in cfg["steps"][0], "web.yaml's first step is no longer its warc_reader"
    cfg["steps"][0] = {"files_reader": {"paths": [paths]}}
    for stage in ("tokenizer", "shards", "train"):
        cfg.pop(stage, None)
    cfg.update(name=name, output_dir=str(out), executor=executor)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()  # loguru writes local time


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def job_times(logs: Path) -> list[dict]:
    """Per job (a folder of logs/): start (executor.json written), end (stats.json written),
    and each task's start and end (its log)."""
    jobs = []
    for folder in sorted(p for p in logs.iterdir() if (p / "executor.json").exists()):
        start = (folder / "executor.json").stat().st_mtime
        ends = [p.stat().st_mtime for p in (folder / "completions").glob("*")] if (folder / "completions").exists() else []
        end = (folder / "stats.json").stat().st_mtime if (folder / "stats.json").exists() else max(ends, default=start)
        tasks = []
        for tl in sorted((folder / "logs").glob("task_*.log")):
            launch = done = None
            for line in tl.read_text(encoding="utf-8", errors="replace").splitlines():
                m = LOG_LINE.search(line)
                if m and m.group(2) == "Launching pipeline":
                    launch, done = _stamp(m.group(1)), None
                elif m:
                    done = _stamp(m.group(1))
            if launch is not None and done is not None:
                tasks.append((launch, done))
        clipped = [(max(a, start), min(b, end)) for a, b in tasks]
        busy = _union([(a, b) for a, b in clipped if b > a])
        longest = max((b - a for a, b in tasks), default=0.0)
        jobs.append({"job": folder.name, "start": start, "end": end, "wall_s": round(end - start, 3),
                     "tasks": len(tasks), "task_s": round(sum(b - a for a, b in tasks), 3),
                     "longest_task_s": round(longest, 3), "busy_s": round(busy, 3),
                     "idle_s": round(end - start - busy, 3), "wall_minus_longest_s": round(end - start - longest, 3)})
    return sorted(jobs, key=lambda j: j["start"])


def kept_docs(folder: Path) -> list[tuple[str, str]]:
    rows = []
    for f in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            rows += [(d["id"], hashlib.sha1(d["text"].encode()).hexdigest()) for d in map(json.loads, fh)]
    return sorted(rows)


def fetch_run(url: str, out: Path, env: dict) -> None:
    """A run folder on the S3 server, copied to ``out`` for the same accounting as a local one:
    summary.json, logs/ and docs/, each file with the store's LastModified as its mtime (1 s
    resolution: the job splits of these runs are that coarse)."""
    import s3fs

    fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                           endpoint_url=env["AWS_ENDPOINT_URL"], use_listings_cache=False)
    root = url.removeprefix("s3://")
    for key, info in fs.find(root, detail=True).items():
        rel = key[len(root) + 1:]
        if not (rel == "summary.json" or rel.startswith(("logs/", "docs/"))):
            continue
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(key, str(dst))
        stamp = info["LastModified"].timestamp()
        os.utime(dst, (stamp, stamp))
    fs.rm(root, recursive=True)


def run_once(base: Path, config: str, n: int, executor: dict, env: dict, timeout: float) -> dict:
    where = CONFIGS[config][2]
    out = base / f"{config}-x{n}"
    shutil.rmtree(out, ignore_errors=True)
    path = write_pipeline(out, f"cluster-{config}-x{n}", pattern(n, where), executor)
    url = f"s3://{RUNS_BUCKET}/{config}-x{n}" if where == "s3-out" else None
    if url:  # the same pipeline, its run folder on the S3 server
        path.write_text(path.read_text().replace(f"output_dir: {out}", f"output_dir: {url}"))
    t0 = time.time()
    try:
        r = subprocess.run([*CORPUS, "run", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        rc, stderr = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        err = e.stderr or ""
        rc, stderr = "timeout", err.decode(errors="replace") if isinstance(err, bytes) else err
    t1 = time.time()
    res = {"config": config, "copies": n, "wall_s": round(t1 - t0, 2), "rc": rc}
    if rc != 0:
        res["error"] = stderr[-3000:]
        return res
    if url:
        fetch_run(url, out, env)
    summary = json.loads((out / "summary.json").read_text())
    steps = {s["step"]: s for s in summary["steps"]}
    jobs = job_times(out / "logs")
    parts = {"startup": jobs[0]["start"] - t0, "tasks": sum(j["busy_s"] for j in jobs),
             "idle": sum(j["idle_s"] for j in jobs),
             "between": sum(max(0.0, b["start"] - a["end"]) for a, b in zip(jobs, jobs[1:])),
             "finish": t1 - jobs[-1]["end"]}
    docs = kept_docs(out / "docs" if url else Path(summary["docs"]))
    res.update({
        "docs_in": steps["files_reader"]["documents_out"], "files": steps["files_reader"]["files"],
        "docs_kept": summary["steps"][-1]["documents_out"], "run_wall_s": summary.get("wall_seconds"),
        "steps_wall_s": summary.get("steps_wall_seconds"),
        "parts": {k: round(v, 2) for k, v in parts.items()},
        "steps_s": round(sum(s["seconds"] for s in summary["steps"]), 2),
        "read_s": steps["files_reader"]["seconds"], "step_s": {s["step"]: s["seconds"] for s in summary["steps"]},
        "task_s": round(sum(j["task_s"] for j in jobs), 2),
        "jobs": [{k: v for k, v in j.items() if k not in ("start", "end")} for j in jobs],
        "docs_hash": hashlib.sha256(json.dumps(docs).encode()).hexdigest()[:16], "docs_count": len(docs),
    })
    res["per_1k_s"] = round(1000 * res["wall_s"] / max(1, res["docs_in"]), 2)
    return res


def measure(base: Path, config: str, n: int, executor: dict, env: dict, args) -> dict:
    """``--repeat`` runs (a failed one is tried once more); medians of the numbers."""
    runs, failures = [], []
    for i in range(args.repeat):
        r = run_once(base, config, n, executor, env, args.timeout)
        if r["rc"] != 0:
            log(f"  {config} x{n}: FAILED (rc {r['rc']}): {r['error'][-600:]}\n  trying once more")
            failures.append(r)
            r = run_once(base, config, n, executor, env, args.timeout)
        if r["rc"] != 0:
            failures.append(r)
            log(f"  {config} x{n}: FAILED again (rc {r['rc']})")
            continue
        log(f"  {config} x{n} run {i + 1}: {r['wall_s']}s, {r['docs_in']} docs in, {r['docs_kept']} kept, "
            + ", ".join(f"{k} {v}" for k, v in r["parts"].items()))
        runs.append(r)
    if not runs:
        return {"config": config, "copies": n, "failed": True, "failures": failures}
    med = dict(runs[0])
    for key in ("wall_s", "per_1k_s", "steps_s", "read_s", "task_s", "run_wall_s", "steps_wall_s"):
        med[key] = round(statistics.median(r[key] for r in runs), 2)
    med["parts"] = {k: round(statistics.median(r["parts"][k] for r in runs), 2) for k in PARTS}
    med["runs"] = runs
    med["failures"] = failures
    med["same_docs_every_repeat"] = len({r["docs_hash"] for r in runs}) == 1
    if not args.keep:
        shutil.rmtree(base / f"{config}-x{n}", ignore_errors=True)
    return med


# ===================================================================== report

def fmt(v, digits=1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def report(results: dict) -> str:
    copies = results["meta"]["copies"]
    runs = {(r["config"], r["copies"]): r for r in results["runs"]}
    clusters = results.get("clusters", {})
    configs = [c for c in CONFIGS if any((c, n) in runs for n in copies)]
    ok = lambda c, n: (c, n) in runs and not runs[c, n].get("failed")  # noqa: E731
    lines = [f"## Cluster bench: {results['meta']['site_files']} pages of {SITE} x {', '.join(map(str, copies))}, "
             f"{results['meta']['tasks']} tasks, web.yaml's steps",
             "",
             "`s3`: the inputs on the S3 server (moto on 127.0.0.1); `s3-out`: the inputs and the whole run folder "
             "there; `disk`: both on local disk.",
             ""]
    head = ["configuration", "inputs"]
    for n in copies:
        head += [f"docs in x{n}", f"kept x{n}", f"wall s x{n}", f"s / 1k docs x{n}"]
    if len(copies) > 1:
        head += ["fixed s", "marginal s / 1k docs"]
    head += ["cluster start s", "driver connect s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in configs:
        label, kind, where = CONFIGS[c]
        row = [f"`{c}` {label}", {"s3": "S3 server", "s3-out": "S3 server, run folder too"}.get(where, "local disk")]
        for n in copies:
            r = runs.get((c, n))
            if not ok(c, n):
                row += ["FAILED"] * 4
                continue
            row += [f"{r['docs_in']:,}", f"{r['docs_kept']:,}", fmt(r["wall_s"]), fmt(r["per_1k_s"])]
        if len(copies) > 1:
            a, b = copies[0], copies[-1]
            if ok(c, a) and ok(c, b) and runs[c, b]["docs_in"] != runs[c, a]["docs_in"]:
                slope = (runs[c, b]["wall_s"] - runs[c, a]["wall_s"]) / (runs[c, b]["docs_in"] - runs[c, a]["docs_in"])
                row += [fmt(runs[c, a]["wall_s"] - slope * runs[c, a]["docs_in"]), fmt(1000 * slope)]
            else:
                row += ["-", "-"]
        cl = clusters.get(kind, {})
        row += [fmt(cl.get("start_s"), 1) if cl else "-",
                fmt(cl["connect_import_s"] + cl["connect_init_s"], 1) if "connect_init_s" in cl else "-"]
        lines.append("| " + " | ".join(row) + " |")
    # documents: every configuration keeps what the baseline keeps
    for n in copies:
        if not ok(BASELINE, n):
            continue
        ref = runs[BASELINE, n]
        for c in configs:
            if ok(c, n) and (runs[c, n]["docs_hash"] != ref["docs_hash"] or not runs[c, n]["same_docs_every_repeat"]):
                lines.append(f"| **WARNING** `{c}` x{n} | keeps {runs[c, n]['docs_count']} documents that differ from "
                             f"`{BASELINE}`'s {ref['docs_count']} (or between repeats) |" + " |" * (len(head) - 2))
    sizes = results["meta"]["sizes"]
    for c in configs:
        for n in copies:
            if ok(c, n) and runs[c, n]["docs_in"] != sizes[str(n)]["documents"]:
                lines.append(f"| **WARNING** `{c}` x{n} | read {runs[c, n]['docs_in']} documents, not the "
                             f"{sizes[str(n)]['documents']} pages of the input |" + " |" * (len(head) - 2))
            if (c, n) in runs and runs[c, n].get("failures"):
                lines.append(f"| **NOTE** `{c}` x{n} | {len(runs[c, n]['failures'])} failed run(s), see the JSON |"
                             + " |" * (len(head) - 2))
    for n in copies:
        lines += ["", f"### Where the wall time goes, x{n} (seconds)",
                  "", "| configuration | wall s | startup | tasks | idle in jobs | between jobs | finish | "
                  "task s (sum) | steps s (sum) | in tasks, outside steps s | read s | jobs: wall - longest task |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in configs:
            if not ok(c, n):
                continue
            r = runs[c, n]
            p = r["parts"]
            jl = ", ".join(f"{fmt(j['wall_minus_longest_s'])}" for j in r["jobs"])
            lines.append(f"| `{c}` | {fmt(r['wall_s'])} | {fmt(p['startup'])} | {fmt(p['tasks'])} | {fmt(p['idle'])} | "
                         f"{fmt(p['between'])} | {fmt(p['finish'])} | {fmt(r['task_s'])} | {fmt(r['steps_s'])} | "
                         f"{fmt(r['task_s'] - r['steps_s'])} | {fmt(r['read_s'], 2)} | {jl} |")
    lines += ["", "### What the overhead is spent on", "", overhead_text(results, runs, copies)]
    return "\n".join(lines)


def overhead_text(results: dict, runs: dict, copies: list[int]) -> str:
    n = copies[-1]
    if (BASELINE, n) not in runs or runs[BASELINE, n].get("failed"):
        return f"(no `{BASELINE}` run at x{n} to compare with)"
    base = runs[BASELINE, n]
    bp = base["parts"]
    out = [f"At x{n} ({base['docs_in']:,} documents) `{BASELINE}` takes {fmt(base['wall_s'])} s: "
           f"{fmt(bp['startup'])} s before its first job (Python, imports, building the steps and their models, "
           f"listing the inputs), {fmt(bp['tasks'])} s with tasks running, {fmt(bp['idle'])} s inside jobs with no task "
           f"running (worker pool start, the one-task dedup stages' hand-over), {fmt(bp['between'] + bp['finish'])} s "
           f"between jobs and after the last (summary, report)."]
    for c in CONFIGS:
        if c == BASELINE or (c, n) not in runs or runs[c, n].get("failed"):
            continue
        r = runs[c, n]
        d = {k: r["parts"][k] - bp[k] for k in PARTS}
        dw = r["wall_s"] - base["wall_s"]
        biggest = sorted(d.items(), key=lambda kv: -abs(kv[1]))[:3]
        text = (f"`{c}`: {'+' if dw >= 0 else ''}{fmt(dw)} s ({'+' if dw >= 0 else ''}{fmt(100 * dw / base['wall_s'], 0)}%) "
                f"against `{BASELINE}`; " + ", ".join(f"{k} {'+' if v >= 0 else ''}{fmt(v)} s" for k, v in biggest))
        if CONFIGS[c][1] != "local":
            tasks = sum(j["tasks"] for j in r["jobs"])
            btasks = sum(j["tasks"] for j in base["jobs"])
            text += (f". Its {tasks} tasks (over {len(r['jobs'])} jobs) ran {fmt(r['task_s'])} s in all against "
                     f"{fmt(base['task_s'])} s for the local executor's {btasks}, of which outside the steps' own timers "
                     f"{fmt(r['task_s'] - r['steps_s'])} s against {fmt(base['task_s'] - base['steps_s'])} s; the jobs "
                     f"spent {fmt(r['parts']['idle'])} s with no task running against {fmt(bp['idle'])} s; ray start "
                     f"({fmt(results['clusters'].get(CONFIGS[c][1], {}).get('start_s'))} s) is not counted in the run")
        if CONFIGS[c][2].startswith("s3"):
            same_exec = {"local": "local-disk", "ray2": "ray2-disk"}.get(CONFIGS[c][1])
            if same_exec and (same_exec, n) in runs and not runs[same_exec, n].get("failed"):
                o = runs[same_exec, n]
                text += (f"; S3 reads: the reader's own seconds {fmt(o['read_s'], 2)} -> {fmt(r['read_s'], 2)} (summed "
                         f"over tasks), startup {fmt(o['parts']['startup'])} -> {fmt(r['parts']['startup'])} s (listing "
                         f"the bucket), wall {fmt(r['wall_s'] - o['wall_s'])} s against `{same_exec}`")
        out.append(text + ".")
    if any(CONFIGS[c][1] != "local" and (c, n) in runs for c in CONFIGS):
        out.append("On Ray every task is a fresh actor process: a placement group, the actor started, the pipeline and "
                   "its models unpickled in it, a process pool of one forked inside it; then the steps load what they "
                   "load lazily, in every task. The local executor's workers are forked from a forkserver that imported "
                   "the models once (`forkserver_preload`). That is the idle time at each job's start and between a "
                   "task and the next on the same CPU, and the tasks' time outside the steps' own timers.")
    return "\n\n".join(out)


# ===================================================================== main

def run(args) -> dict:
    copies = sorted({int(x) for x in args.copies.split(",")})
    configs = [c.strip() for c in args.configs.split(",")]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configuration {unknown[0]!r}; known: {', '.join(CONFIGS)}")
    configs = [c for c in CONFIGS if c in configs]  # fixed order: local first, then each cluster once
    inputs = build_inputs(args.pages, copies)
    site_files = inputs[copies[0]]["files"] // copies[0]
    print(f"inputs: {site_files} HTML pages of {SITE}; sizes: "
          + ", ".join(f"x{n} = {m['files']:,} documents ({m['mb']} MB)" for n, m in inputs.items())
          + f"; configurations: {', '.join(configs)}; {args.tasks} tasks; output on S3: not supported yet (inputs only)",
          flush=True)
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "copies": copies, "configs": configs, "tasks": args.tasks,
            "workers": args.workers, "repeat": args.repeat, "site": SITE, "site_files": site_files,
            "sizes": {str(n): {"documents": m["files"], "mb": m["mb"]} for n, m in inputs.items()},
            "output_on_s3": "the *-s3-out configurations: inputs and output_dir on the S3 server",
            "python": sys.version.split()[0], "cpus": os.cpu_count()}
    meta["machine"] = {"idle_wait": "skipped (--no-wait)"} if args.no_wait else wait_idle()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = DATA / "runs" / stamp
    base.mkdir(parents=True, exist_ok=True)
    results = {"meta": meta, "runs": [], "clusters": {}}
    t_bench = time.time()

    tokdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    token = tokdir / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_USAGE_STATS_ENABLED": "0"}
    s3 = None
    try:
        if any(CONFIGS[c][2].startswith("s3") for c in configs):
            from tests.servers import S3Server

            s3 = S3Server()
            env.update(s3.env(SECRET))  # the driver lists the bucket, the tasks (and so Ray's nodes) read it
            meta["s3_upload_s"] = upload(s3, inputs)
            s3.fs(SECRET).mkdir(RUNS_BUCKET)
            log(f"S3 server {s3.endpoint}: inputs uploaded in {meta['s3_upload_s']}s")
        local_exec = {"type": "local", "tasks": args.tasks, "workers": args.workers}
        for kind in ("local", "ray1", "ray2"):
            mine = [c for c in configs if CONFIGS[c][1] == kind]
            if not mine:
                continue
            executor = local_exec
            if kind != "local":
                deadline = time.time() + 300  # another Ray node (a test's): `ray stop --force` would stop it too
                while raylets() and time.time() < deadline:
                    time.sleep(2)
                if raylets():
                    log("WARNING: a Ray node already runs on this machine: `ray stop --force` will stop it too")
                try:
                    info = start_cluster(kind, env)
                except Exception as e:  # noqa: BLE001  (a cluster that does not start: its rows say so)
                    log(f"{kind}: the cluster did not start: {e}")
                    results["clusters"][kind] = {"error": str(e)[-2000:]}
                    ray_stop(env)
                    for c in mine:
                        for n in copies:
                            results["runs"].append({"config": c, "copies": n, "failed": True, "failures": [str(e)[-500:]]})
                    continue
                results["clusters"][kind] = info
                log(f"{kind}: cluster at {info['address']} started in {info['start_s']}s; a driver connects in "
                    f"{info['connect_import_s']}s (import ray) + {info['connect_init_s']}s (ray.init)")
                executor = {"type": "ray", "address": info["address"], "tasks": args.tasks, "cpus_per_task": 1,
                            "mem_per_cpu_gb": 0.5}
            try:
                for c in mine:
                    for n in copies:
                        log(f"{c} x{n}: running")
                        results["runs"].append(measure(base, c, n, executor, env, args))
            finally:
                if kind != "local":
                    ray_stop(env)
    finally:
        if any(CONFIGS[c][1] != "local" for c in configs):
            ray_stop(env)
        if s3 is not None:
            s3.stop()
        shutil.rmtree(tokdir, ignore_errors=True)
        meta["bench_s"] = round(time.time() - t_bench, 1)
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        path = DATA / f"results-{stamp}.json"
        path.write_text(json.dumps(results, indent=1))
        log(f"results: {path}")
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", nargs="?", default="run", choices=("run", "report"))
    ap.add_argument("results", nargs="?", help="report: a results JSON")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--copies", default="1,4", help="sizes, as copies of the site's pages (default 1,4)")
    ap.add_argument("--pages", type=int, default=None, help="only the first N pages of the site (a smoke run)")
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="the local executor's workers")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement; medians are kept")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine")
    ap.add_argument("--keep", action="store_true", help="keep the runs' output folders (data/cluster/runs/<stamp>)")
    args = ap.parse_args()
    if args.cmd == "report":
        if not args.results:
            sys.exit("report: give a results JSON")
        print(report(json.loads(Path(args.results).read_text())))
        return
    print(report(run(args)))


if __name__ == "__main__":
    main()
