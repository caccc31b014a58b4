"""A real two-node Ray cluster on this machine: ``ray start --head`` and ``ray start --address``
as separate processes, every node on 127.0.0.1. ``pipelines/web.yaml`` run on it with
``executor: {type: ray, address: ...}`` keeps exactly the documents and duplicate clusters of
the same run on the local executor; run again with its output on an S3 server (moto, on
127.0.0.1) and the worker node's raylet SIGKILLed mid-run, the run (its lost tasks resubmitted
by datatrove) or a re-run completes with the same documents, none lost, none twice."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import CORPUS, ROOT, shared_path
from tests.servers import S3Server

pytest.importorskip("ray")
pytest.importorskip("s3fs", reason="pip install s3fs 'moto[server]' (the test extra)")
pytest.importorskip("moto", reason="pip install s3fs 'moto[server]' (the test extra)")
psutil = pytest.importorskip("psutil")
pytest.importorskip("heliport", reason="web.yaml's language ID: pip install 'corpus[langid]'")

RAY = str(Path(sys.executable).parent / "ray")
S3_SECRET = "corpus-ray-s3-secret-51c2"
NODE = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=150000000", "--disable-usage-stats"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raylets() -> set[int]:
    return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "raylet"}


def _ray(env: dict, *args: str) -> None:
    r = subprocess.run([RAY, *args], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


@pytest.fixture
def cluster(tmp_path_factory):
    """A head node and a worker node, one CPU each, with Ray's token authentication (one token
    for the nodes and the driver, as a real cluster has); yields (the environment a driver
    needs, the address, the worker's raylet pid)."""
    deadline = time.time() + 30  # a local Ray of an earlier test may still be stopping
    while _raylets() and time.time() < deadline:
        time.sleep(0.5)
    if _raylets():
        pytest.skip("another Ray node runs on this machine")
    token = tmp_path_factory.mktemp("ray") / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    s3 = S3Server()  # every node and the driver reach it with the same credentials, as on a real cluster
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **s3.env(S3_SECRET),
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    try:
        _ray(env, "start", "--head", f"--port={port}", "--include-dashboard=false", *NODE)
        head = _raylets()
        _ray(env, "start", f"--address={address}", *NODE)
        worker = _raylets() - head
        assert len(worker) == 1
        yield env, address, worker.pop(), s3
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, env=env)
        s3.stop()


def _web_pipeline(tmp_path: Path, out: Path, executor: dict) -> Path:
    cfg = yaml.safe_load((ROOT / "pipelines" / "web.yaml").read_text())
    warcs = shared_path("warc")
    cfg["steps"][0]["warc_reader"]["paths"] = [str(p) for p in sorted(warcs.rglob("*.warc.gz"))
                                               if p.parent.name in ("resiliparse", "dolma", "ia-web-commons")
                                               and "clipped" not in p.name]
    cfg.update(output_dir=str(out), executor=executor)
    for stage in ("tokenizer", "shards", "train"):
        cfg.pop(stage, None)
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CORPUS, "run", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def _kept(out: Path) -> list[tuple[str, str]]:
    rows = []
    for f in sorted((out / "docs").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            rows += [(d["id"], d["text"]) for d in map(json.loads, fh)]
    return sorted(rows)


def test_a_two_node_cluster_keeps_what_the_local_executor_keeps_even_when_a_node_dies(tmp_path, cluster):
    env, address, worker_raylet, s3 = cluster
    local = _run(_web_pipeline(tmp_path, tmp_path / "local", {"type": "local", "tasks": 4, "workers": 2}))
    assert local.returncode == 0, local.stderr[-3000:]
    expected = _kept(tmp_path / "local")
    assert len(expected) > 20

    ray_exec = {"type": "ray", "address": address, "tasks": 4, "cpus_per_task": 1, "mem_per_cpu_gb": 0.5}
    first = _run(_web_pipeline(tmp_path, tmp_path / "ray", ray_exec), env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _kept(tmp_path / "ray") == expected
    assert (tmp_path / "ray" / "dedup" / "clusters.jsonl").read_text() == \
        (tmp_path / "local" / "dedup" / "clusters.jsonl").read_text()

    # again, from scratch, with the run folder on S3, and the worker node's raylet is SIGKILLed
    # once a first task has finished
    fs = s3.fs(S3_SECRET)
    fs.makedirs("runs", exist_ok=True)
    out = "runs/ray-kill"
    path = _web_pipeline(tmp_path, tmp_path / "ray-kill", ray_exec)
    path.write_text(path.read_text().replace(str(tmp_path / "ray-kill"), f"s3://{out}"))
    killed: dict = {}

    def kill_when_a_task_is_done():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            fs.invalidate_cache()
            done = fs.glob(f"{out}/logs/*/completions/*")
            if done:
                killed["after"] = sorted(p.removeprefix(f"{out}/logs/") for p in done)
                os.kill(worker_raylet, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_a_task_is_done)
    killer.start()
    result = _run(path, env)
    killer.join()
    assert killed, "the raylet was never killed: no task finished"
    print(f"worker raylet killed after {killed['after']}; the run {'completed' if result.returncode == 0 else 'stopped'}")
    if result.returncode != 0:  # the run may stop at the loss; the same command resumes it
        result = _run(path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    kept = []
    for key in sorted(fs.glob(f"{out}/docs/*.jsonl.gz")):
        kept += [(d["id"], d["text"]) for d in map(json.loads, gzip.decompress(fs.cat_file(key)).decode().splitlines())]
    assert sorted(kept) == expected
    summary = json.loads(fs.cat_file(f"{out}/summary.json"))
    assert summary["steps"][-1]["documents_out"] == len(expected)
    token = Path(env["RAY_AUTH_TOKEN_PATH"]).read_bytes()
    for key in fs.find(out):  # no secret of the cluster or the store in any file of the run
        data = fs.cat_file(key)
        assert token not in data and S3_SECRET.encode() not in data, key
