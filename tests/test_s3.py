"""Inputs, run folders and shards on object storage: a real S3 API (moto's server on
127.0.0.1, ``pip install 'moto[server]' s3fs``, both in the test extra), reached through fsspec
with the usual AWS environment variables or the pipeline's storage_options. A run that reads
s3:// keeps exactly what the same run on local copies keeps, large files split between tasks
by byte ranges included; a run whose output_dir is on s3:// writes there what it writes on local
disk, and resumes after kill -9; shards copied there read as local ones; the secret key reaches
no file of the run and no output; a URL that matches nothing or a server that does not answer
is one clear error before any work."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import CORPUS, ROOT, shared_path
from tests.servers import S3Server

SECRET = "corpus-test-secret-7f3a9c"  # a value to look for in the run folder: it must appear nowhere


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs", reason="pip install s3fs 'moto[server]' (the test extra)")
    pytest.importorskip("moto", reason="pip install s3fs 'moto[server]' (the test extra)")
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, s3):
    """The same inputs on local disk and in s3://inputs/: JSONL parts cut from real text, and
    the dolma WARC files."""
    text = shared_path("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
    local = tmp_path_factory.mktemp("inputs")
    speeches = [s.strip() for s in text.split("\n\n") if len(s.strip()) > 200]
    for part in range(2):
        with gzip.open(local / f"part-{part}.jsonl.gz", "wt", encoding="utf-8") as f:
            for i, speech in enumerate(speeches[part::2][:300]):
                f.write(json.dumps({"id": f"p{part}-{i}", "text": speech}) + "\n")
    for warc in shared_path("warc", "dolma").glob("*.warc.gz"):
        shutil.copy(warc, local / warc.name)
    fs = s3.fs(SECRET)
    fs.mkdir("inputs")
    for path in sorted(local.iterdir()):
        fs.put(str(path), f"inputs/{path.name}")
    return local


def run(tmp_path, name: str, steps: str, env: dict, tasks: int = 3, head: str = "") -> subprocess.CompletedProcess:
    out = tmp_path / name
    (tmp_path / f"{name}.yaml").write_text(f"name: {name}\noutput_dir: {out}\nexecutor: {{type: local, tasks: {tasks}, "
                                           f"workers: 2}}\n{head}steps:\n{steps}")
    return subprocess.run([*CORPUS, "run", str(tmp_path / f"{name}.yaml")], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **env})


def documents(folder) -> list[tuple[str, str]]:
    docs = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs += [(d["id"], d["text"]) for d in map(json.loads, f)]
    return sorted(docs)


@pytest.mark.parametrize("kind", ["jsonl", "warc"])
def test_a_run_on_s3_inputs_keeps_what_the_local_run_keeps(tmp_path, s3, inputs, kind):
    steps = {"jsonl": "  - jsonl_reader: {{paths: ['{root}/*.jsonl.gz'], split_bytes: 20000}}\n"
                      "  - gopher_quality: {{}}\n  - minhash_dedup: {{}}\n  - jsonl_writer: {{path: docs}}\n",
             "warc": "  - warc_reader: {{paths: ['{root}/*.warc.gz']}}\n  - html_extract: {{}}\n"
                     "  - jsonl_writer: {{path: docs}}\n"}[kind]
    env = s3.env(SECRET)
    local = run(tmp_path, "local", steps.format(root=inputs), env)
    remote = run(tmp_path, "remote", steps.format(root="s3://inputs"), env)
    assert local.returncode == 0, local.stderr[-3000:]
    assert remote.returncode == 0, remote.stderr[-3000:]
    kept = documents(tmp_path / "local" / "docs")
    assert len(kept) > 20 and documents(tmp_path / "remote" / "docs") == kept
    summary = {s["step"]: s for s in json.loads((tmp_path / "remote" / "summary.json").read_text())["steps"]}
    assert summary[f"{kind}_reader"]["files"] == len(list(inputs.glob(f"*.{kind}.gz")))
    for path in (tmp_path / "remote").rglob("*"):  # logs, summary, report, documents
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in remote.stdout + remote.stderr


@pytest.mark.parametrize("written", ["literal", "from_environment"])
def test_storage_options_in_the_pipeline_carry_the_credentials_and_stay_secret(tmp_path, s3, inputs, written):
    """No AWS_* variable: the pipeline's storage_options alone reach the server, from the runner
    (listing the inputs) and from the executor's workers (reading them); the secret is in no
    file of the run (pipeline.yaml shows it redacted) and in no output."""
    secret = SECRET if written == "literal" else "${CORPUS_TEST_SECRET}"
    env = {"CORPUS_TEST_SECRET": SECRET} if written == "from_environment" else {}
    head = f"storage_options:\n  s3: {{key: corpus-test, secret: '{secret}', endpoint_url: '{s3.endpoint}'}}\n"
    steps = "  - warc_reader: {{paths: ['{root}/*.warc.gz']}}\n  - html_extract: {{}}\n  - jsonl_writer: {{path: docs}}\n"
    remote = run(tmp_path, "remote", steps.format(root="s3://inputs"), env, head=head)
    local = run(tmp_path, "local", steps.format(root=inputs), {})
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert documents(tmp_path / "remote" / "docs") == documents(tmp_path / "local" / "docs")
    for path in (tmp_path / "remote").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in remote.stdout + remote.stderr
    shown = (tmp_path / "remote" / "pipeline.yaml").read_text()
    assert s3.endpoint in shown and ("<redacted>" in shown if written == "literal" else "${CORPUS_TEST_SECRET}" in shown)


def test_storage_options_that_cannot_be_used_are_one_clear_error(tmp_path, s3, inputs):
    for head, message in [("storage_options: {s3: {secret: '${CORPUS_NOT_SET}'}}\n", "the environment has no CORPUS_NOT_SET"),
                          ("storage_options: {s4: {key: x}}\n", "'s4' is not an fsspec protocol"),
                          ("storage_options: {s3: key}\n", "storage_options must map a protocol to its options")]:
        r = run(tmp_path, "bad", "  - jsonl_reader: {paths: ['s3://inputs/*.jsonl.gz']}\n", {}, head=head)
        assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_an_s3_url_that_matches_nothing_is_one_clear_error(tmp_path, s3, inputs):
    r = run(tmp_path, "missing", "  - jsonl_reader: {paths: ['s3://inputs/nothing-*.jsonl']}\n", s3.env(SECRET))
    assert r.returncode != 0 and "matches no file" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "missing" / "logs").exists()


def test_an_unreachable_output_dir_is_one_clear_error(tmp_path, s3, inputs):
    env = {**s3.env(SECRET), "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}  # port 9: nobody
    (tmp_path / "p.yaml").write_text(f"output_dir: s3://runs/unreachable\nsteps:\n"
                                     f"  - jsonl_reader: {{paths: ['{inputs}/*.jsonl.gz']}}\n")
    r = subprocess.run([*CORPUS, "run", str(tmp_path / "p.yaml")], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **env})
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "output_dir 's3://runs/unreachable' cannot be reached" in r.stderr and SECRET not in r.stderr


def test_an_unreachable_server_is_one_clear_error(tmp_path, s3):
    env = {**s3.env(SECRET), "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}  # port 9: nobody
    r = run(tmp_path, "unreachable", "  - jsonl_reader: {paths: ['s3://inputs/*.jsonl.gz']}\n", env)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "s3://inputs/*.jsonl.gz" in r.stderr and SECRET not in r.stderr
    assert not (tmp_path / "unreachable" / "logs").exists()


def test_shards_on_s3_are_read_as_the_local_ones(tmp_path, s3, inputs):
    """A run folder copied to object storage: `corpus shards stats/verify` and `corpus train
    --shards s3://...` work on it (fetched once into the cache, checked against the manifest); a
    shard changed there is reported."""
    steps = "  - jsonl_reader: {paths: ['{root}/*.jsonl.gz']}\n  - jsonl_writer: {path: docs}\n".replace("{root}", str(inputs))
    head = "tokenizer: {vocab_size: 500}\nshards: {val_fraction: 0.1}\n"
    made = run(tmp_path, "made", steps, {}, tasks=1, head=head)
    assert made.returncode == 0, made.stderr[-3000:]
    fs = s3.fs(SECRET)
    fs.makedirs("runs", exist_ok=True)
    for part in ("shards", "tokenizer"):
        fs.put(str(tmp_path / "made" / part), f"runs/made/{part}", recursive=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **s3.env(SECRET),
           "CORPUS_CACHE": str(tmp_path / "cache")}

    def corpus(*args):
        return subprocess.run([*CORPUS, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)

    local_stats = corpus("shards", "stats", str(tmp_path / "made" / "shards"))
    remote_stats = corpus("shards", "stats", "s3://runs/made/shards")
    assert remote_stats.returncode == 0, remote_stats.stderr[-2000:]
    assert json.loads(remote_stats.stdout) == json.loads(local_stats.stdout)
    assert corpus("shards", "verify", "s3://runs/made/shards").returncode == 0
    trained = corpus("train", "--shards", "s3://runs/made/shards", "--output", str(tmp_path / "train"),
                     *[x for kv in ("n_layer=1", "n_head=2", "n_embd=32", "block_size=32", "max_steps=3", "eval_interval=3",
                                    "eval_batches=1", "threads=1", "warmup_steps=1", "sample_tokens=3") for x in ("--set", kv)])
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "train" / "metrics.csv").read_text().strip().splitlines()[-1].startswith("3,")
    victim = json.loads((tmp_path / "made" / "shards" / "manifest.json").read_text())["shards"][0]["file"]
    data = bytearray(fs.cat_file(f"runs/made/shards/{victim}"))
    data[len(data) // 2] ^= 0x01
    fs.pipe_file(f"runs/made/shards/{victim}", bytes(data))
    changed = corpus("shards", "verify", "s3://runs/made/shards")
    assert changed.returncode == 1 and victim in changed.stdout + changed.stderr and "sha256 differs" in changed.stdout


def s3_documents(fs, folder: str) -> list[tuple[str, str]]:
    docs = []
    for key in sorted(fs.glob(f"{folder}/*.jsonl.gz")):
        docs += [(d["id"], d["text"]) for d in map(json.loads, gzip.decompress(fs.cat_file(key)).decode().splitlines())]
    return sorted(docs)


def test_a_run_with_output_on_s3_keeps_what_the_local_run_keeps_and_resumes_after_kill_9(tmp_path, s3, inputs):
    """output_dir on s3://: the curated documents, the removed ones, dedup's clusters, the
    summary's funnel, the tokenizer, the shards (same sha256), the model and the report land
    there, the same as the run on local disk; a run killed with SIGKILL mid-way and started again
    ends with the same documents, none lost, none twice."""
    import signal
    import time

    dup = tmp_path / "dup"
    dup.mkdir()
    with gzip.open(inputs / "part-0.jsonl.gz", "rt", encoding="utf-8") as f, \
            gzip.open(dup / "copy.jsonl.gz", "wt", encoding="utf-8") as g:
        for line in list(f)[:40]:  # the same speeches again under other ids: exact duplicates
            d = json.loads(line)
            g.write(json.dumps({"id": "copy-" + d["id"], "text": d["text"]}) + "\n")
    steps = (f"  - jsonl_reader: {{paths: ['{inputs}/*.jsonl.gz', '{dup}/*.jsonl.gz'], split_bytes: 20000}}\n"
             "  - gopher_quality: {}\n  - minhash_dedup: {}\n  - jsonl_writer: {path: docs}\n")
    head = "save_removed: true\n"
    stages = ("tokenizer: {vocab_size: 400}\nshards: {val_fraction: 0.1, tasks: 2}\ntrain: {n_layer: 1, n_head: 2, "
              "n_embd: 32, block_size: 32, batch_size: 4, max_steps: 2, eval_interval: 2, eval_batches: 1, "
              "sample_tokens: 2, threads: 1}\n")
    local = run(tmp_path, "local", steps + stages, {}, head=head)
    assert local.returncode == 0, local.stderr[-3000:]
    fs = s3.fs(SECRET)
    fs.makedirs("runs", exist_ok=True)

    def remote_yaml(name):
        path = tmp_path / f"{name}.yaml"
        path.write_text((tmp_path / "local.yaml").read_text().replace(f"output_dir: {tmp_path / 'local'}",
                                                                        f"output_dir: s3://runs/{name}"))
        return path

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **s3.env(SECRET),
           "CORPUS_CACHE": str(tmp_path / "cache")}
    remote = subprocess.run([*CORPUS, "run", str(remote_yaml("web"))], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env=env)
    assert remote.returncode == 0, remote.stderr[-3000:]
    kept = documents(tmp_path / "local" / "docs")
    assert len(kept) > 100 and s3_documents(fs, "runs/web/docs") == kept
    assert fs.cat_file("runs/web/dedup/clusters.jsonl").decode() == (tmp_path / "local" / "dedup" / "clusters.jsonl").read_text()
    assert "exact_duplicate" in fs.cat_file("runs/web/dedup/clusters.jsonl").decode()

    def funnel(summary):
        return [(s["step"], s["documents_in"], s["documents_out"], s["dropped"]) for s in summary["steps"]]

    summary = json.loads(fs.cat_file("runs/web/summary.json"))
    assert funnel(summary) == funnel(json.loads((tmp_path / "local" / "summary.json").read_text()))
    assert summary["output_dir"] == "s3://runs/web" and summary["docs"] == "s3://runs/web/docs"
    assert fs.exists("runs/web/report.html") and fs.glob("runs/web/removed/*/*.jsonl.gz")
    assert not [k for k in fs.find("runs/web") if SECRET.encode() in fs.cat_file(k)]
    # the stages after the steps: the same tokenizer and shards (by sha256), a model trained from them
    local_manifest = json.loads((tmp_path / "local" / "shards" / "manifest.json").read_text())
    manifest = json.loads(fs.cat_file("runs/web/shards/manifest.json"))
    assert [(e["file"], e["sha256"]) for e in manifest["shards"]] == [(e["file"], e["sha256"]) for e in local_manifest["shards"]]
    assert manifest["tokenizer"]["sha256"] == local_manifest["tokenizer"]["sha256"]
    assert manifest["tokenizer"]["path"] == "../tokenizer/tokenizer.model"
    assert fs.exists("runs/web/train/checkpoint") and summary["stages"]["train"]["checkpoint"].startswith("s3://runs/web/train")
    # the model read back from there, on a machine without the run's local caches
    shutil.rmtree(tmp_path / "cache")
    (tmp_path / "eval.txt").write_text("To be, or not to be, that is the question.\n")
    evaluated = subprocess.run([*CORPUS, "eval", "s3://runs/web/train/checkpoint", "--text", str(tmp_path / "eval.txt")],
                               cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["bits_per_byte"] > 0
    sampled = subprocess.run([*CORPUS, "sample", "s3://runs/web/train/checkpoint", "--tokens", "5"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300, env=env)
    assert sampled.returncode == 0 and sampled.stdout.strip(), sampled.stderr[-2000:]
    assert not list(tmp_path.glob("s3*")) and not (ROOT / "s3:").exists()

    # kill -9 once the first task has finished, then the same command again
    path = remote_yaml("killed")
    proc = subprocess.Popen([*CORPUS, "run", str(path)], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not fs.glob("runs/killed/logs/*/completions/*"):
        fs.invalidate_cache()
        time.sleep(0.05)
    killed_mid_run = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run([*CORPUS, "run", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert killed_mid_run and s3_documents(fs, "runs/killed/docs") == kept


def test_a_crawl_into_a_run_folder_on_s3(tmp_path, s3):
    """crawl: with output_dir on s3://: the crawl works in a local mirror (its frontier needs a
    local socket), its WARC files land in the run folder on S3, and the steps read them there."""
    import tempfile

    import yaml

    from tests.servers import Logged, serve

    server, base, _ = serve(Logged, str(shared_path("sites", "python-docs")), robots=b"User-agent: *\nAllow: /\n")
    cache = tempfile.mkdtemp(prefix="cc-", dir="/tmp")  # short: the frontier's Unix socket lives there
    try:
        path = tmp_path / "crawl.yaml"
        path.write_text(yaml.safe_dump({
            "name": "crawled", "output_dir": "s3://runs/crawled",
            "crawl": {"seeds": [f"{base}/tutorial/index.html"], "allow": ["/tutorial/"], "allow_private": True,
                      "max_pages": 8, "delay": 0.0, "autothrottle": False},
            "steps": [{"warc_reader": {"paths": ["crawl/*.warc.gz"]}}, {"jsonl_writer": {"path": "docs"}}]}))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **s3.env(SECRET),
               "CORPUS_CACHE": cache}
        s3.fs(SECRET).makedirs("runs", exist_ok=True)
        r = subprocess.run([*CORPUS, "run", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    finally:
        server.shutdown()
        shutil.rmtree(cache, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-3000:]
    fs = s3.fs(SECRET)
    assert fs.glob("runs/crawled/crawl/*.warc.gz") and fs.exists("runs/crawled/crawl/summary.json")
    summary = json.loads(fs.cat_file("runs/crawled/summary.json"))
    assert summary["stages"]["crawl"]["pages"] == 8
    assert summary["steps"][-1]["documents_out"] == 8 == len(s3_documents(fs, "runs/crawled/docs"))
