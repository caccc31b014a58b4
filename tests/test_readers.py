"""Readers on real WARCs and files: multilingual decoding, and bad input as counted skips."""

import gzip
import json

import pytest

from corpus.readers import FilesReader, HFDatasetReader, InputError, JsonlReader, ParquetReader, WarcReader
from tests.conftest import funnel_of


def read(step, rank=0, world_size=1):
    return list(step.run(None, rank, world_size))


def counts(step):
    return funnel_of(step)


def test_warc_common_crawl_multilingual(shared):
    step = WarcReader([str(shared("warc", "resiliparse", "warcfile.warc.gz"))])
    docs = read(step)
    assert len(docs) == 16  # 16 HTML responses
    assert len({d.id for d in docs}) == 16
    assert all(d.metadata["url"].startswith("http") and d.metadata["date"] for d in docs)
    text = "".join(d.text for d in docs)
    assert any("\u4e00" <= c <= "\u9fff" for c in text), "Chinese pages decoded"
    assert any("\u0400" <= c <= "\u04ff" for c in text), "Russian pages decoded"
    assert "\ufffd" not in text


def test_warc_old_format_japanese_euc_jp(shared):
    docs = read(WarcReader([str(shared("warc", "resiliparse", "clueweb-quirk.warc.gz"))]))
    assert len(docs) == 29
    assert all(any("\u3040" <= c <= "\u30ff" for c in d.text) for d in docs), "EUC-JP pages decoded to Japanese"


def test_truncated_record_is_a_counted_skip(shared):
    step = WarcReader([str(shared("warc", "resiliparse", "clipped.warc.gz")), str(shared("warc", "resiliparse", "warcfile.warc.gz"))])
    docs = read(step)
    assert counts(step).skipped["truncated_record"] == 1
    assert len(docs) == 16  # the other file loses nothing


def test_corrupt_files_do_not_stop_the_run(shared):
    warcio = shared("warc", "warcio")
    step = WarcReader([str(warcio / "*.warc*"), str(warcio / "*.arc*")])
    docs = read(step)
    c = counts(step)
    # non-chunked gzip, a WARC that is really HTML: counted skips of the bad part only
    assert sum(c.skipped.get(k, 0) for k in ("corrupt_file", "corrupt_member", "unreadable_file")) >= 2
    assert c.skipped["not_warc_name"] == 1  # example-bad.warc.gz.bad: listed by the glob, said, not read
    assert c.files == len(step.files)
    assert any(d.metadata["url"].startswith("http://example.com") for d in docs)  # ARC records read too


def test_only_warc_files_are_read(shared, tmp_path):
    with pytest.raises(InputError, match="no .warc, .arc or .wet"):
        WarcReader([str(shared("warc", "commoncrawl-whirlwind", "LICENSE"))])


def test_wet_conversion_records_are_text(shared):
    docs = read(WarcReader([str(shared("warc", "commoncrawl-whirlwind", "whirlwind.warc.wet.gz"))]))
    assert len(docs) == 1 and docs[0].metadata["content_type"] == "text/plain"


def test_files_shared_between_tasks(shared):
    paths = [str(shared("warc", "dolma") / "*.warc.gz")]
    all_ids = {d.id for d in read(WarcReader(paths))}
    parts = [{d.id for d in read(WarcReader(paths), r, 2)} for r in range(2)]
    assert parts[0] and parts[1] and not parts[0] & parts[1] and parts[0] | parts[1] == all_ids


def test_jsonl_reader_skips_bad_lines(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write(json.dumps({"id": "1", "text": "one", "url": "u"}) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"id": "2", "body": "no text"}) + "\n")
        f.write(json.dumps({"id": "3", "text": "three", "metadata": {"language": "en"}}) + "\n")
    step = JsonlReader([str(p)])
    docs = read(step)
    assert [d.id for d in docs] == ["1", "3"]
    assert docs[0].metadata["url"] == "u" and docs[1].metadata["language"] == "en"
    assert counts(step).skipped["bad_json"] == 1 and counts(step).skipped["no_text"] == 1


def test_parquet_reader(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x y", "z"], "lang": ["en", "fr"]}), tmp_path / "d.parquet")
    docs = read(ParquetReader([str(tmp_path / "*.parquet")]))
    assert [(d.id, d.text, d.metadata["lang"]) for d in docs] == [("a", "x y", "en"), ("b", "z", "fr")]


def test_files_reader_ids_gzip_and_bad_bytes(tmp_path):
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha 中文")
    with gzip.open(root / "sub" / "b.txt.gz", "wt") as f:
        f.write("beta")
    (root / "latin.txt").write_bytes("café, naïve façade".encode("cp1252"))  # not UTF-8: detected
    (root / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    (root / "empty.txt").write_text("   \n")
    (root / "utf16.txt").write_bytes("中文 text".encode("utf-16"))  # with its byte-order mark
    step = FilesReader([str(root / "**" / "*.txt*")])
    docs = {d.id: d.text for d in read(step)}
    assert docs == {"a.txt": "alpha 中文", "sub/b.txt": "beta", "latin.txt": "café, naïve façade",
                    "utf16.txt": "中文 text"}
    c = counts(step)
    assert c.skipped["binary_payload"] == 1 and c.dropped["empty"] == 1
    assert c.counters["encoding_utf-8"] == 3 and c.counters["encoding_cp1252"] == 1


def test_files_reader_decodes_chinese_pages_like_a_browser(shared):
    """Saved GB2312/GBK pages (most of zh-extraction) decode without a replacement character."""
    pages = shared("zh-extraction", "pages", "original")
    step = FilesReader([str(pages / "*.html")])
    docs = read(step)
    assert len(docs) == len(list(pages.glob("*.html"))) >= 30
    assert all("\ufffd" not in d.text and d.metadata["content_type"] == "text/html" for d in docs)
    assert counts(step).counters["encoding_gb18030"] >= 20


def test_hf_dataset_from_disk(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": [f"doc {i}" for i in range(10)], "lang": ["en"] * 10}).save_to_disk(tmp_path / "ds")
    step = HFDatasetReader(path=str(tmp_path / "ds"))
    parts = [read(HFDatasetReader(path=str(tmp_path / "ds")), r, 3) for r in range(3)]
    texts = [d.text for p in parts for d in p]
    assert sorted(texts) == sorted(f"doc {i}" for i in range(10))
    assert len({d.id for p in parts for d in p}) == 10
    assert read(step)[0].metadata["lang"] == "en"
    with pytest.raises(InputError):
        HFDatasetReader(path=str(tmp_path / "missing"))


def _split_read(make, tasks):
    """Documents of every task of a reader built by ``make()``, and the files it counted."""
    docs, files = [], 0
    for rank in range(tasks):
        step = make()
        docs += read(step, rank, tasks)
        files += counts(step).files
    return docs, files


@pytest.mark.parametrize("tasks", [2, 3])
def test_a_large_file_is_read_by_every_task_with_nothing_lost_or_doubled(shared, tmp_path, tasks):
    """JSON Lines (byte ranges at line starts), Parquet (runs of row groups) and gzipped WARC
    (runs of records) cut into parts smaller than the file: the tasks together read exactly the
    documents of the whole file, each once, and count the file once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = shared("web-quality", "hplt2-excerpts.jsonl")
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()[:1500]]
    jsonl = tmp_path / "big.jsonl"
    jsonl.write_text("".join(json.dumps({"text": r["text"], "lang": r["lang"]}, ensure_ascii=False) + "\n" for r in rows),
                     encoding="utf-8")  # no ids: a line's id is its position
    parquet = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in rows]), parquet, row_group_size=100)
    warc = str(shared("warc", "resiliparse", "clueweb-quirk.warc.gz"))
    cases = [
        (lambda **kw: JsonlReader([str(jsonl)], **kw), jsonl.stat().st_size // 7, lambda d: d.text),
        (lambda **kw: ParquetReader([str(parquet)], **kw), parquet.stat().st_size // 5, lambda d: (d.id, d.text)),
        (lambda **kw: WarcReader([warc], **kw), 30_000, lambda d: (d.id, d.text)),
    ]
    for make, split, key in cases:
        whole = read(make())
        parts, files = _split_read(lambda: make(split_bytes=split), tasks)
        assert len(make(split_bytes=split).units()) >= 3, "the file is cut in parts"
        assert sorted(map(key, parts)) == sorted(map(key, whole)) and files == 1
        assert len({d.id for d in parts}) == len(parts)  # ids stay unique across parts
