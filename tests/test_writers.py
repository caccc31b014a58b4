"""Writers: files appear only when complete, re-runs replace them, metadata survives a round trip."""

import gzip
import json

from datatrove.data import Document

from corpus.readers import JsonlReader, ParquetReader
from corpus.writers import JsonlWriter, ParquetWriter

DOCS = [
    Document(text="一 first", id="a", metadata={"language": "zh", "quality_score": 0.5, "url": "http://x"}),
    Document(text="second", id="b", metadata={"language": "en", "dedup_cluster": "a"}),
]


def test_jsonl_writer_is_atomic_and_passes_documents_through(tmp_path):
    w = JsonlWriter(str(tmp_path / "docs"))
    gen = w.run(iter(DOCS), rank=3)
    first = next(gen)
    assert first.id == "a" and not (tmp_path / "docs" / "00003.jsonl.gz").exists()  # still being written
    assert [d.id for d in gen] == ["b"]
    rows = [json.loads(line) for line in gzip.open(tmp_path / "docs" / "00003.jsonl.gz", "rt")]
    assert [r["id"] for r in rows] == ["a", "b"] and rows[0]["metadata"]["language"] == "zh"
    list(JsonlWriter(str(tmp_path / "docs")).run(iter(DOCS[:1]), rank=3))  # a re-run replaces, never appends
    assert len(list(gzip.open(tmp_path / "docs" / "00003.jsonl.gz", "rt"))) == 1
    back = list(JsonlReader([str(tmp_path / "docs" / "*.jsonl.gz")]).run())
    assert back[0].metadata == DOCS[0].metadata | {"source": "00003.jsonl.gz"}  # readers name the source


def test_parquet_round_trip_with_different_metadata_keys(tmp_path):
    list(ParquetWriter(str(tmp_path / "pq")).run(iter(DOCS), rank=0))
    back = list(ParquetReader([str(tmp_path / "pq" / "*.parquet")]).run())
    assert [(d.id, d.text, d.metadata) for d in back] == [(d.id, d.text, d.metadata | {"source": "00000.parquet"}) for d in DOCS]
