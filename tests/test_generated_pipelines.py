"""Property: whatever the pipeline and its input (no files, empty files, corrupt ones, bad lines,
more tasks than files, filters that drop everything, optional stages), a run ends with a
summary or one clear error, never a traceback; every step's funnel balances; and a second run
of the same command changes nothing."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus.config import ConfigError, config_from_dict
from corpus.pipeline import Runner, RunError

SENTENCES = [
    "The committee published its annual report on water quality in the northern districts today.",
    "Researchers found that the new method reduces the energy needed to purify water by a third.",
    "研究人员发现，这种新方法可以将净化水所需的能量减少三分之一，而且成本更低。",
    "Die Forscher fanden heraus, dass die neue Methode den Energiebedarf deutlich senkt.",
    "click here buy now best price",
    "",
]
LINES = st.one_of(
    st.lists(st.sampled_from(SENTENCES), min_size=0, max_size=30).map(lambda s: {"text": " ".join(s)}),
    st.just("{not json"),
    st.just('{"text": "half a pair \\ud800 here"}'),
    st.just('{"id": 7, "body": "no text field"}'),
)
FILE = st.one_of(
    st.lists(LINES, min_size=0, max_size=12).map(lambda rows: ("jsonl", rows)),
    st.just(("empty", [])),
    st.just(("corrupt_gz", [])),
)
STEPS = st.lists(st.sampled_from([
    {"language_id": {}},
    {"gopher_quality": {}},
    {"gopher_quality": {"min_doc_words": 100000}},  # drops everything
    {"c4_quality": {}},
    {"quality_score": {"min_score": 0.0}},
    {"quality_score": {"min_score": 1.0}},  # drops (almost) everything
    {"minhash_dedup": {}},
]), min_size=0, max_size=4)


def write_inputs(root: Path, files) -> None:
    for i, (kind, rows) in enumerate(files):
        if kind == "jsonl":
            body = "".join((r if isinstance(r, str) else json.dumps({"id": f"{i}-{k}", **r})) + "\n"
                           for k, r in enumerate(rows))
            (root / f"{i:02d}.jsonl").write_text(body)
        elif kind == "empty":
            (root / f"{i:02d}.jsonl").write_text("")
        else:
            data = gzip.compress(b'{"text": "fine line"}\n' * 50)
            (root / f"{i:02d}.jsonl.gz").write_bytes(data[: len(data) // 2])


def outputs(out: Path) -> dict[str, str]:
    """What a run leaves for a user: the curated documents (as text) and the shard manifest."""
    found = {}
    for f in sorted((out / "docs").glob("*.jsonl.gz")):
        found[f.name] = hashlib.sha256(gzip.decompress(f.read_bytes())).hexdigest()
    manifest = out / "shards" / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        found["shards"] = json.dumps([m["shards"], m["totals"]], sort_keys=True)
    return found


def check_funnel(summary: dict, n_files: int) -> None:
    steps = summary["steps"]
    assert steps[0]["files"] == n_files
    for prev, cur in zip(steps, steps[1:]):
        assert cur["documents_in"] == prev["documents_out"], (prev, cur)
    for s in steps[1:]:
        assert s["documents_in"] == s["documents_out"] + sum(s["dropped"].values()) + sum(s["skipped"].values()), s


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=st.lists(FILE, min_size=0, max_size=4), tasks=st.integers(1, 8), steps=STEPS,
       stages=st.sampled_from([None, "tokenizer", "shards"]))
def test_any_pipeline_runs_or_says_why(files, tasks, steps, stages):
    root = Path(tempfile.mkdtemp(prefix="corpus-prop-"))
    try:
        (root / "in").mkdir()
        write_inputs(root / "in", files)
        raw = {"output_dir": str(root / "out"), "executor": {"tasks": tasks, "workers": 1},
               "steps": [{"jsonl_reader": {"paths": [str(root / "in" / "*.jsonl*")]}}, *steps, {"jsonl_writer": {}}]}
        if stages:
            raw["tokenizer"] = {"vocab_size": 400}
        if stages == "shards":
            raw["shards"] = {}
        try:
            runner = Runner(config_from_dict(raw))  # validates everything, inputs included
        except ConfigError as e:
            assert not files and "matches no file" in str(e)  # the only refusal: no input at all
            return
        try:
            summary = runner.run()
        except RunError as e:
            assert stages and "every document was dropped" in str(e)
            summary = json.loads((root / "out" / "summary.json").read_text())
            assert summary["steps"][-1]["documents_out"] == 0
        check_funnel(summary, len(files))
        first = outputs(root / "out")
        try:
            Runner(config_from_dict(raw)).run()  # the same command again
        except RunError:
            pass
        assert outputs(root / "out") == first
    finally:
        shutil.rmtree(root, ignore_errors=True)
