"""`corpus report`: one self-contained HTML page per run, checked in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CORPUS, ROOT


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium is absent: apt-get install -y chromium (make test installs it)")


def render(page: Path, out: Path) -> tuple[str, str, Path]:
    """The DOM after load, Chromium's console log, and a full-page screenshot."""
    browser = chromium()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
              "--v=0", "--no-first-run", f"--user-data-dir={out / 'profile'}"]
    dom = subprocess.run(common + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    shot = out / "report.png"
    run = subprocess.run(common + ["--window-size=1100,3000", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    return dom.stdout, dom.stderr + run.stderr, shot


def test_corpus_run_writes_a_self_contained_report(web_run):
    page = web_run / "report.html"
    assert page.exists()
    text = page.read_text(encoding="utf-8")
    for section in ("Funnel", "Languages", "Document lengths", "Quality score by language", "Duplicates",
                    "Tokenizer and shards", "Examples"):
        assert f"<h2>{section}" in text, section
    assert "gopher_quality" in text and "line_cleaner: lines it removed" in text
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", text), "the report must not load anything from outside"
    assert "<script" not in text


def test_report_loads_in_chromium_and_shows_its_plots(web_run, tmp_path):
    from PIL import Image

    dom, log, shot = render(web_run / "report.html", tmp_path)
    assert dom.count("<svg") >= 5, "the plots are inline SVG"
    assert "Funnel" in dom
    errors = [line for line in log.splitlines() if "CONSOLE" in line or "Failed to load resource" in line]
    assert not errors, errors
    image = Image.open(shot).convert("L")
    # the top of the page (title, funnel chart) is drawn: many pixels are not background
    top = image.crop((0, 0, image.width, 1200))
    dark = sum(top.histogram()[:200])
    assert dark > 10_000, f"only {dark} drawn pixels: the page looks blank"
    shutil.copy(shot, web_run / "report.png")  # kept beside the run for a person to look at


def test_report_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    proc = subprocess.run(CORPUS + ["report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "no summary.json" in proc.stderr


def test_report_of_a_run_that_trains_shows_its_loss_curves(tmp_path):
    """The demo's shape (documents → tokenizer → shards → GPT), tiny: the report shows training."""
    from tests.conftest import shared_path

    text = shared_path("tinyshakespeare", "input.txt")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"""
name: tiny
output_dir: {tmp_path / 'run'}
steps: [{{files_reader: {{paths: ["{text}"]}}}}]
tokenizer: {{vocab_size: 512}}
shards: {{val_fraction: 0.1}}
train: {{n_layer: 1, n_head: 2, n_embd: 32, block_size: 32, batch_size: 4, max_steps: 20, eval_interval: 10,
         eval_batches: 2, sample_tokens: 0, device: cpu}}
""")
    proc = subprocess.run(CORPUS + ["run", str(cfg)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = tmp_path / "run" / "report.html"
    assert "<h2>Training" in page.read_text(encoding="utf-8")
    dom, log, shot = render(page, tmp_path)
    assert dom.count("<svg") >= 4 and "validation loss" in dom
    assert not [line for line in log.splitlines() if "CONSOLE" in line or "Failed to load resource" in line]


def test_the_report_samples_a_large_run_instead_of_loading_it(tmp_path):
    """Documents: an even share from every file, each kept as a short preview with its length;
    clusters.jsonl: read a line at a time, every cluster counted, the three largest shown."""
    import gzip
    import json

    from corpus import report

    docs = tmp_path / "docs"
    docs.mkdir()
    for task in range(3):
        with gzip.open(docs / f"{task:05d}.jsonl.gz", "wt", encoding="utf-8") as f:
            for i in range(100):
                f.write(json.dumps({"id": f"{task}-{i}", "text": "word " * (1000 + i),
                                    "metadata": {"language": "en", "big": "x" * 10_000}}) + "\n")
    sample = report._read_documents(docs, limit=30)
    assert len(sample) == 30
    assert sorted({d["id"].split("-")[0] for d in sample}) == ["0", "1", "2"]  # every task's file
    assert all(len(d["text"]) <= report.PREVIEW_CHARS + 1 and d["length"] >= 5000 for d in sample)
    assert all(set(d["metadata"]) == {"language"} for d in sample)  # no bulky metadata kept
    (tmp_path / "dedup").mkdir()
    with open(tmp_path / "dedup" / "clusters.jsonl", "w") as f:
        for c in range(5000):
            size = 2 + (c % 7 == 0) + 50 * (c == 1234)
            f.write(json.dumps({"cluster": f"c{c}", "kept": f"k{c}", "size": size,
                                "removed": [{"id": f"r{c}-{j}", "reason": "near_duplicate", "similarity": 0.9}
                                            for j in range(size - 1)]}) + "\n")
    section = report.dedup_section(tmp_path, [])
    removed = sum(1 + (c % 7 == 0) + 50 * (c == 1234) for c in range(5000))
    assert f"5000 clusters, {removed} documents removed" in section
    assert section.index("cluster of 52<") < section.index("cluster of 3<")  # largest first
    assert section.count("<li>") == 5 + 2 + 2  # at most five members of each of the three shown
