"""Shared fixtures. Real test data lives beside the project in ../shared/data (see its README);
tests that need it skip with a clear message when it is absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CORPUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
CORPUS = [sys.executable, "-m", "corpus.cli"]


def funnel_of(step):
    """What a step reported through the funnel contract (corpus.core.funnel), from its stats."""
    from corpus.core import funnel

    return funnel.counts([{k: int(v.total) for k, v in step.stats.stats.items()}],
                         reader=getattr(step, "is_reader", False))


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    # torch on 2 threads slows down 10x while another process keeps a core busy
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def web_run(tmp_path_factory):
    """pipelines/web.yaml run once on the shared WARCs, keeping what it drops and its raw documents."""
    import subprocess

    shared_path("warc")
    out = tmp_path_factory.mktemp("web") / "run"
    proc = subprocess.run(CORPUS + ["run", str(ROOT / "pipelines" / "web.yaml"), "--set", f"output_dir={out}",
                                    "--set", "save_removed=true", "--set", "save_raw=true"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
