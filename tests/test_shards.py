"""Token shards users can trust and inspect: parallel writing, verify, stats, the notebook API,
polars, the tokenizer CLI, and the notebook itself executed."""

import gzip
import json
import subprocess

import pyarrow as pa
import pytest

from corpus import shards
from tests.conftest import CORPUS, ROOT
from corpus.tokenizer.encode import ShardsConfig, write_shards
from corpus.tokenizer.sp import Tokenizer


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Documents from the real WARC pages and UDHR paragraphs in four files, a tokenizer trained with
    the CLI, and shards written by two processes."""
    import csv

    from corpus.extract import TrafilaturaExtractor
    from corpus.readers import WarcReader
    from corpus.filters.language import LanguageID
    from corpus.filters.quality import QualityScore
    from tests.conftest import shared_path

    root = tmp_path_factory.mktemp("made")
    warcs = shared_path("warc")
    docs = list(QualityScore().run(LanguageID().run(TrafilaturaExtractor().run(
        WarcReader([str(warcs / "resiliparse" / "*.warc.gz"), str(warcs / "dolma" / "*.warc.gz")]).run()))))
    rows = [{"id": d.id, "text": d.text, "metadata": d.metadata} for d in docs]
    with open(shared_path("langid-udhr", "udhr_paragraphs.tsv"), encoding="utf-8") as f:
        rows += [{"id": f"udhr-{i}", "text": r["text"], "metadata": {"language": r["bcp47"]}}
                 for i, r in enumerate(csv.DictReader(f, delimiter="\t")) if i % 10 == 0]
    (root / "docs").mkdir()
    for k in range(4):
        with gzip.open(root / "docs" / f"{k:05d}.jsonl.gz", "wt", encoding="utf-8") as f:
            for r in rows[k::4]:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    r = subprocess.run([*CORPUS, "tokenizer", "train", "--input", str(root / "docs"), "--vocab-size", "2000",
                        "--output", str(root / "tok")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    model = root / "tok" / "tokenizer.model"
    write_shards(root / "docs", model, root / "shards", ShardsConfig(val_fraction=0.1, tasks=2, shard_tokens=50_000))
    return root, {r["id"]: r for r in rows}


def test_parallel_shards_equal_single_process(made, tmp_path):
    root, rows = made
    write_shards(root / "docs", root / "tok" / "tokenizer.model", tmp_path / "one", ShardsConfig(val_fraction=0.1, tasks=1))

    def content(folder):
        out = {}
        for split in ("train", "val"):
            for row in shards.open(folder, split):
                out[row["id"]] = (split, tuple(row["tokens"]))
        return out

    two = content(root / "shards")
    assert two == content(tmp_path / "one")
    assert set(two) == {i for i, r in rows.items() if r["text"]}
    manifest = shards.read_manifest(root / "shards")
    assert {e["file"].split("-")[1] for e in manifest["shards"]} == {"000", "001"}  # both tasks wrote
    assert len(manifest["shards"]) > 4  # rolled at shard_tokens


def test_tokenizer_card_from_the_cli(made):
    root, _ = made
    card = json.loads((root / "tok" / "card.json").read_text())
    for key in ("settings", "input_bytes", "sample_bytes", "heldout_bytes_per_token", "seconds", "model_sha256"):
        assert card[key] is not None
    assert card["heldout_roundtrip_failures"] == 0


def test_open_preview_stats(made):
    root, rows = made
    ds = shards.open(root / "shards", "val")
    assert ds.num_rows == shards.read_manifest(root / "shards")["totals"]["val"]["documents"]
    for p in shards.preview(root / "shards", "val", n=5, chars=10_000):
        assert p["text"] == rows[p["id"]]["text"][:10_000]
    st = shards.stats(root / "shards")
    assert st["splits"]["train"]["languages"]["en"] > 5 and "zh" in st["splits"]["train"]["languages"]
    assert 0 < st["splits"]["train"]["quality_score"]["mean"] <= 1
    r = subprocess.run([*CORPUS, "shards", "stats", str(root / "shards")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["splits"]["val"]["documents"] == ds.num_rows


def test_shards_open_with_pyarrow_and_polars(made):
    import polars as pl

    root, rows = made
    entry = shards.read_manifest(root / "shards")["shards"][0]
    path = root / "shards" / entry["file"]
    with pa.memory_map(str(path)) as src:
        table = pa.ipc.open_stream(src).read_all()
    df = pl.read_ipc_stream(path)
    assert df.height == table.num_rows == entry["rows"]
    assert df["id"].to_list() == table.column("id").to_pylist()
    tok = Tokenizer(root / "tok" / "tokenizer.model")
    first = df.row(0, named=True)
    assert tok.decode(first["tokens"]) == rows[first["id"]]["text"]


def test_verify_catches_a_flipped_byte(made, tmp_path):
    import shutil

    root, _ = made
    copy = tmp_path / "shards"
    shutil.copytree(root / "shards", copy)
    assert shards.verify(copy) == []
    victim = shards.read_manifest(copy)["shards"][2]["file"]
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / victim).write_bytes(bytes(data))
    problems = shards.verify(copy)
    assert problems and all(victim in p for p in problems)
    r = subprocess.run([*CORPUS, "shards", "verify", str(copy)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and f"FAIL {victim}: sha256 differs" in r.stdout


def test_notebook_runs(made, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    root, _ = made
    monkeypatch.setenv("CORPUS_SHARDS", str(root / "shards"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws PNGs
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(ROOT / "notebooks" / "inspect_shards.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "every shard matches the manifest" in outputs and "train tokens in" in outputs
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_tiny_corpus_still_gets_a_val_document(made, tmp_path):
    root, _ = made
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": f"document number {i} " * 50}) + "\n" for i in range(5)))
    manifest = write_shards(docs, root / "tok" / "tokenizer.model", tmp_path / "s", ShardsConfig(val_fraction=0.001))
    assert manifest["totals"]["val"]["documents"] == 1 and manifest["totals"]["train"]["documents"] == 4
    assert shards.verify(tmp_path / "s") == []
    tok = Tokenizer(root / "tok" / "tokenizer.model")
    rows = list(shards.open(tmp_path / "s", None))
    assert sorted(r["id"] for r in rows) == [f"d{i}" for i in range(5)]
    assert all(tok.decode(r["tokens"]) == f"document number {r['id'][1:]} " * 50 for r in rows)
