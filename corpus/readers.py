"""Readers: turn files (local paths or fsspec URLs, glob patterns allowed) into datatrove Documents.

Every reader takes ``paths``, a list of globs that must each match at least one file: a
missing input stops the run before any work. Files are shared out between tasks, and so are the
parts of a large file where its format can be cut (byte ranges at line starts for JSON Lines,
runs of row groups for Parquet, runs of records for gzipped WARC): ``units[rank::world_size]``. A bad record or an unreadable file is a counted, logged skip;
it never ends the run nor loses the other records.

The same readers serve outside a pipeline: ``documents(inputs)`` yields the documents of
folders, files and globs in any format they know (the tokenizer and the shard writer read
their input this way), with the same ids and the same handling of bad records.
"""

from __future__ import annotations

import codecs
import json
import re
import time
import zlib
from pathlib import PurePosixPath
from typing import Iterator, Literal

import fsspec
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from loguru import logger

from corpus.core import chat
from corpus.core.funnel import Funnel
from corpus.core.registry import register
from corpus.decode import decode, looks_like_html



class InputError(ValueError):
    """An input path or glob that matches nothing."""


def _glob_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard: ids are relative to it."""
    parts = PurePosixPath(pattern).parts
    root = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        root.append(part)
    if len(root) == len(parts):  # no wildcard: the file's own folder
        root = root[:-1]
    return str(PurePosixPath(*root)) if root else ""


def expand_paths(patterns: list[str]) -> list[tuple[str, str, str]]:
    """Expand globs into sorted (url, fs protocol, id relative to the glob root) triples."""
    if not patterns:
        raise InputError("'paths' is empty: give at least one file or glob")
    out, seen = [], set()
    for pattern in patterns:
        try:
            fs, _, matches = fsspec.get_fs_token_paths(pattern)
            files = sorted(m for m in matches if fs.isfile(m))
        except (ValueError, ImportError):  # an unknown protocol, its package missing: said as they are
            raise
        except Exception as e:  # the storage did not answer: network, credentials, permissions
            raise InputError(f"input {pattern!r} cannot be listed: {type(e).__name__}: {e}") from None
        if not files:
            raise InputError(f"input {pattern!r} matches no file")
        root = _glob_root(fs._strip_protocol(pattern))
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        for f in files:
            if f in seen:
                continue
            seen.add(f)
            rel = f[len(root):].lstrip("/") if root and f.startswith(root) else f
            out.append((f, protocol, rel))
    return out


class FileReader(Funnel, PipelineStep):
    """Base for readers of files: expands ``paths``, shards files over tasks, counts files,
    documents and skips (funnel: a record that is not a document is dropped, one that cannot
    be read is skipped)."""

    type = "📖 - READER"
    is_reader = True

    def __init__(self, paths: list[str], limit: int = -1, split_bytes: int = 256_000_000):
        super().__init__()
        if split_bytes < 1:
            raise ValueError("split_bytes must be at least 1")
        self.paths = paths
        self.limit = limit
        self.split_bytes = split_bytes  # for the readers whose files can be cut (their parts())
        self.files = self.expand()
        self._last_log = 0.0

    def expand(self) -> list[tuple[str, str, str]]:
        return expand_paths(self.paths)

    def open(self, url: str, protocol: str, compression: str | None = "infer"):
        return fsspec.open(self.full_url(url, protocol), "rb", compression=compression).open()

    @staticmethod
    def full_url(url: str, protocol: str) -> str:
        return url if protocol in ("file", "local") else f"{protocol}://{url}"

    def parts(self, url: str, protocol: str) -> list:
        """How one file is shared between tasks: ``[None]`` (whole, the default), or the parts
        that ``read_file`` takes (readers of formats that can be cut override this)."""
        return [None]

    def file_size(self, url: str, protocol: str) -> int:
        fs, path = fsspec.core.url_to_fs(self.full_url(url, protocol))
        return fs.size(path)

    def units(self) -> list[tuple[str, str, str, object]]:
        """(url, protocol, id root, part) of every piece of work, the same in every task: each
        task takes ``units[rank::world_size]``, so a few large files keep every task busy."""
        return [(url, protocol, rel, part) for url, protocol, rel in self.files for part in self.parts(url, protocol)]

    def read_file(self, url: str, protocol: str, rel: str, part=None):  # -> iterator of Document
        raise NotImplementedError

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        """A record or file that cannot be read: counted and logged; the rest goes on."""
        self.skipped(reason)
        logger.warning(f"{self.yaml_name}: skipped ({reason}) {where} {detail}")

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        if self.files is None:
            self.files = expand_paths(self.paths)
        yield from self.read_units(self.units()[rank::world_size], rank)

    def read_units(self, mine: list, rank: int = 0) -> DocumentsPipeline:
        """The documents of these units (of ``units()``), counted through the funnel."""
        count, self._last_log = 0, time.monotonic()
        for fi, (url, protocol, rel, part) in enumerate(mine):
            try:
                docs = self.read_file(url, protocol, rel, part)
                while True:
                    with self.track_time():
                        doc = next(docs, None)
                    if doc is None:
                        break
                    if not doc.text.strip():
                        self.dropped("empty")
                        continue
                    self.kept()
                    self.update_doc_stats(doc)
                    yield doc
                    count += 1
                    now = time.monotonic()
                    if now - self._last_log > 10:
                        self._last_log = now
                        logger.info(f"{self.yaml_name} task {rank}: {count} documents, file {fi + 1}/{len(mine)}")
                    if 0 < self.limit <= count:
                        return
            except (OSError, EOFError, ValueError, json.JSONDecodeError) as e:
                # the file is unreadable from here on; what it already gave is kept
                self.skip("unreadable_file", url, f"{type(e).__name__}: {e}")
            if not part or part[0] == 0:  # a file counts once, in the task that reads its first part
                self.file_done()


def byte_ranges(size: int, split_bytes: int) -> list:
    """[None] for a file of at most ``split_bytes``, else (start, end) ranges of about that size."""
    if size <= split_bytes:
        return [None]
    n = -(-size // split_bytes)
    bounds = [size * k // n for k in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


# ---------------------------------------------------------------- WARC

_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _next_gzip_member(f, pos: int, chunk: int = 1 << 16) -> int | None:
    """Offset of the next gzip member at or after ``pos`` whose start decompresses (a header's
    three bytes can also occur inside compressed data), or None."""
    while True:
        f.seek(pos)
        block = f.read(chunk + 2)
        if len(block) < 3:
            return None
        i = block.find(b"\x1f\x8b\x08")
        if i < 0:
            pos += len(block) - 2
            continue
        f.seek(pos + i)
        try:
            if zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(f.read(4096)):
                return pos + i
        except zlib.error:
            pass
        pos += i + 1


def _is_warc_name(name: str) -> bool:
    return bool(re.search(r"\.(warc|arc|wet)(\.wet)?(\.gz)?$", name, re.I))


@register("warc_reader")
class WarcReader(FileReader):
    """WARC, WARC.gz, ARC and ARC.gz files: one document per HTML response record (WET conversion
    records too). Metadata: url, date, source (the WARC file). Truncated records, non-HTML or
    undecodable payloads are counted skips. A .warc.gz larger than ``split_bytes`` is read by
    several tasks, each the records that start in its byte range."""

    name = "🕷 warc_reader"

    def __init__(self, paths: list[str], limit: int = -1, max_bytes: int = 10_000_000, split_bytes: int = 256_000_000):
        super().__init__(paths, limit, split_bytes)
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.max_bytes = max_bytes
        if not any(_is_warc_name(f[0]) for f in self.files):
            raise InputError(f"no .warc, .arc or .wet file (optionally .gz) among {paths}")

    def read_file(self, url, protocol, rel, part=None):
        """Records of one file. A corrupt gzip member loses only itself: reading resumes at the
        next member (each record of a .warc.gz is its own member)."""
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed

        if not _is_warc_name(url):
            self.skip("not_warc_name", url, "(not .warc, .arc or .wet, optionally .gz): rename it to read it")
            return
        with self.open(url, protocol, compression=None) as f:  # warcio reads gzip members itself
            gzipped = f.read(2) == b"\x1f\x8b"
            # a part of a .warc.gz: the records whose gzip member starts in the byte range
            start, end = (0, None) if part is None else (part[0] and _next_gzip_member(f, part[0]), part[1])
            index = 0
            while start is not None and (end is None or start < end):
                f.seek(start)
                it = ArchiveIterator(f, arc2warc=True)  # it.offset: where the current record starts in f
                records = iter(it)
                while True:
                    try:
                        record = next(records)
                    except StopIteration:
                        return
                    except (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error) as e:
                        failed_at = it.offset or start
                        start = _next_gzip_member(f, failed_at + 1) if gzipped else None
                        where = f"at byte {failed_at} after {index} records: {str(e).strip().splitlines()[0][:120]}"
                        if start is None:
                            self.skip("corrupt_file", url, where)
                        else:
                            self.skip("corrupt_member", url, f"{where}; resuming at byte {start}")
                        break
                    if end is not None and it.offset >= end:
                        return
                    index += 1
                    if record.rec_type not in ("response", "resource", "conversion"):
                        continue
                    doc = self._record_to_doc(record, url, rel, index if part is None else f"@{it.offset}")
                    if doc is not None:
                        yield doc

    def parts(self, url, protocol):
        """Byte ranges of a gzipped WARC larger than ``split_bytes`` (each record is a gzip member
        of its own, so a reader can start at any member)."""
        if not url.lower().endswith(".gz"):
            return [None]
        return byte_ranges(self.file_size(url, protocol), self.split_bytes)

    def _record_to_doc(self, record, url, rel, index):
        headers = record.rec_headers
        target = headers.get_header("WARC-Target-URI") or headers.get_header("uri") or ""
        if record.rec_type == "conversion":  # WET: already text
            content_type = "text/plain"
        else:
            # a response's HTTP header; a resource record (a crawler's saved file) has only the WARC one
            content_type = record.http_headers.get_header("Content-Type") if record.http_headers else \
                headers.get_header("Content-Type")
            identified = headers.get_header("WARC-Identified-Payload-Type")
            kind = (identified or content_type or "").split(";")[0].strip().lower()
            if kind and kind not in _HTML_TYPES:
                self.dropped("not_html")
                return None
        try:
            body = record.content_stream().read(self.max_bytes + 1)
        except Exception as e:  # broken chunking, bad gzip inside the record, ...
            self.skip("corrupt_record", f"{url} record {index}", f"{type(e).__name__}: {e}")
            return None
        if len(body) > self.max_bytes:
            self.skip("too_large", f"{url} {target}", f"> {self.max_bytes} bytes")
            return None
        if getattr(record.raw_stream, "limit", 0) > 0:
            self.skip("truncated_record", f"{url} {target}", f"{record.raw_stream.limit} bytes missing")
            return None
        if record.rec_type != "conversion" and not content_type and b"<" not in body[:2048]:
            self.dropped("not_html")
            return None
        if b"\x00" in body[:4096]:
            self.skip("binary_payload", f"{url} {target}")
            return None
        text, encoding = decode(body, content_type, target, html=record.rec_type != "conversion")
        self.stat_update(f"encoding_{encoding}")
        if text is None:
            self.skip("undecodable", f"{url} {target}", f"(as {encoding})")
            return None
        doc_id = headers.get_header("WARC-Record-ID") or f"{rel}/{index}"
        return Document(
            text=text,
            id=doc_id.strip("<>"),
            metadata={
                "url": target,
                "date": headers.get_header("WARC-Date") or headers.get_header("archive-date"),
                "source": rel,
                "content_type": "text/plain" if record.rec_type == "conversion" else "text/html",
                "encoding": encoding,
            },
        )


# ---------------------------------------------------------------- JSONL / Parquet


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def lone_surrogates(line: bytes | None, row) -> bool:
    """Whether a JSON line decoded to strings that are not Unicode text (an escaped half of a
    surrogate pair, alone): no writer, tokenizer or UTF-8 file can hold them. ``line`` None (an
    item of a JSON list): no cheap look at the line first."""
    if line is not None and not _SURROGATE_ESCAPE.search(line):
        return False
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False



def _doc_from_dict(row: dict, text_key: str, id_key: str, default_id: str, source: str) -> Document | None:
    text = row.get(text_key)
    if not isinstance(text, str):
        return None
    doc_id = row.get(id_key)
    return Document(text=text, id=str(doc_id) if doc_id is not None else default_id,
                    metadata=_row_metadata(row, (text_key, id_key), source))


def _row_metadata(row: dict, used: tuple[str, ...], source: str) -> dict:
    """A record's metadata: its ``metadata`` mapping (or JSON string), then its other keys but
    ``used``, and ``source`` unless it names one."""
    metadata = row.get("metadata")
    if isinstance(metadata, str):  # parquet_writer stores metadata as JSON
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            metadata = {"metadata": metadata}
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    for k, v in row.items():
        if k not in used and k != "metadata":
            metadata[k] = v
    metadata.setdefault("source", source)
    return metadata


@register("jsonl_reader")
class JsonlReader(FileReader):
    """JSON Lines (.jsonl, .jsonl.gz, .jsonl.zst...): one document per line, text in ``text_key``.
    Other keys go to metadata. Bad lines are counted skips. An uncompressed file larger than
    ``split_bytes`` is read by several tasks, each a byte range (a line belongs to the range its
    first byte is in); a line without an id there gets ``<file>/@<byte offset>`` instead of
    ``<file>/<line number>``."""

    name = "🐿 jsonl_reader"

    def __init__(self, paths: list[str], limit: int = -1, text_key: str = "text", id_key: str = "id",
                 split_bytes: int = 256_000_000):
        super().__init__(paths, limit, split_bytes)
        self.text_key, self.id_key = text_key, id_key

    def parts(self, url, protocol):
        if fsspec.utils.infer_compression(url) is not None:  # a compressed stream cannot be entered midway
            return [None]
        return byte_ranges(self.file_size(url, protocol), self.split_bytes)

    @staticmethod
    def _lines(f, part):
        """(line id suffix, line) of the whole file, or of the lines that start in a byte range."""
        if part is None:
            yield from ((str(li), li + 1, line) for li, line in enumerate(f))
            return
        start, end = part
        if start:
            f.seek(start - 1)
            f.readline()  # the rest of the line that started before the range (or the newline before it)
        pos = f.tell()
        while pos < end:
            line = f.readline()
            if not line:
                return
            yield f"@{pos}", f"byte {pos}", line
            pos += len(line)

    def read_file(self, url, protocol, rel, part=None):
        with self.open(url, protocol) as f:
            for suffix, where, row in self.rows(f, url, part):
                doc = _doc_from_dict(row, self.text_key, self.id_key, f"{rel}/{suffix}", rel) if isinstance(row, dict) else None
                if doc is None:
                    self.skip("no_text", f"{url}:{where}", f"no string {self.text_key!r}")
                    continue
                yield doc

    def rows(self, f, url, part):
        """(line id suffix, where, row) of the lines that parse; the others are counted skips."""
        for suffix, where, line in self._lines(f, part):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                self.skip("bad_json", f"{url}:{where}", str(e))
                continue
            if self.bad_unicode(line, row, url, where):
                continue
            yield suffix, where, row

    def bad_unicode(self, line: bytes | None, row, url: str, where) -> bool:
        if not lone_surrogates(line, row):
            return False
        self.skip("invalid_unicode", f"{url}:{where}", f"id {row.get(self.id_key)!r}: a lone surrogate escape "
                  "(\\ud800-\\udfff)" if isinstance(row, dict) else "")
        return True


class DeferredJsonlReader(JsonlReader):
    """Reads files that an earlier job of the same run will write: globs are expanded when the
    task starts, not when the pipeline is built (the runner's plumbing; not a YAML step). An
    earlier job that received no document wrote no file: then there is nothing to read."""

    def expand(self):
        return None

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        try:
            self.files = expand_paths(self.paths)
        except InputError:
            self.files = []
        yield from super().run(data, rank, world_size)


@register("chat_reader")
class ChatReader(JsonlReader):
    """Instruction and chat data (JSON Lines, .jsonl.gz, or a .json list) in any format
    ``corpus.core.chat`` reads: OpenAI ``messages``, ShareGPT ``conversations``, Alpaca
    ``instruction``/``input``/``output``, preference pairs (``chosen``/``rejected``, with a
    ``prompt`` or TRL's full conversations) and our own rendered documents (``text``). The text
    of each document is the rendered conversation (``chat.render``); ``metadata.chat_format``
    says which format it came in, and the record's other keys become metadata as with
    ``jsonl_reader``. A record that is no conversation is a skip with the reason
    ``chat.from_record`` gives (``unknown_role``, ``bad_pair``, ...)."""

    name = "💬 chat_reader"

    def __init__(self, paths: list[str], limit: int = -1, id_key: str = "id", split_bytes: int = 256_000_000):
        super().__init__(paths, limit, "text", id_key, split_bytes)

    def parts(self, url, protocol):
        if re.search(r"\.json(\.\w+)?$", url, re.I):  # a JSON list is one value: read whole
            return [None]
        return super().parts(url, protocol)

    def rows(self, f, url, part):
        if part is not None:  # a byte range of a large JSON Lines file
            yield from super().rows(f, url, part)
            return
        for number, line, row in chat.json_records(f):
            where = number if line is not None else f"item {number}"
            if isinstance(row, Exception):
                self.skip("bad_json", f"{url}:{where}", str(row))
            elif not self.bad_unicode(line, row, url, where):
                yield str(number - 1), where, row

    def read_file(self, url, protocol, rel, part=None):
        with self.open(url, protocol) as f:
            for suffix, where, row in self.rows(f, url, part):
                try:
                    kind = chat.record_format(row)
                    text = chat.render(chat.from_record(row))
                except chat.ChatFormatError as e:
                    self.skip(e.reason, f"{url}:{where}", e.detail)
                    continue
                metadata = _row_metadata(row, (self.id_key, *chat.FORMAT_KEYS[kind]), rel)
                if kind == "text":  # our own document, read back: it says what it came in as
                    metadata.setdefault("chat_format", "pair" if chat.PAIR_MARKERS["chosen"] in text else "messages")
                else:
                    metadata["chat_format"] = kind
                doc_id = row.get(self.id_key)
                yield Document(text=text, id=str(doc_id) if doc_id is not None else f"{rel}/{suffix}", metadata=metadata)


class _TableReader(FileReader):
    """Readers of columnar files (Parquet, Arrow): record batches of rows, text in ``text_key``,
    the other columns go to metadata."""

    def __init__(self, paths: list[str], limit: int = -1, text_key: str = "text", id_key: str = "id",
                 split_bytes: int = 256_000_000):
        super().__init__(paths, limit, split_bytes)
        self.text_key, self.id_key = text_key, id_key

    def batches(self, f, part):  # -> (column names, index of the first row, iterator of record batches)
        raise NotImplementedError

    def read_file(self, url, protocol, rel, part=None):
        with self.open(url, protocol, compression=None) as f:
            names, row_index, batches = self.batches(f, part)
            if self.text_key not in names:
                raise ValueError(f"no column {self.text_key!r} (columns: {names})")
            for batch in batches:
                for row in batch.to_pylist():
                    doc = _doc_from_dict(row, self.text_key, self.id_key, f"{rel}/{row_index}", rel)
                    row_index += 1
                    if doc is None:
                        self.skip("no_text", f"{url} row {row_index - 1}")
                        continue
                    yield doc


@register("parquet_reader")
class ParquetReader(_TableReader):
    """Parquet files: one document per row, text in ``text_key``; other columns go to metadata. A
    file larger than ``split_bytes`` is read by several tasks, each a run of its row groups."""

    name = "📒 parquet_reader"

    def __init__(
        self, paths: list[str], limit: int = -1, text_key: str = "text", id_key: str = "id", batch_size: int = 1000,
        split_bytes: int = 256_000_000,
    ):
        super().__init__(paths, limit, text_key, id_key, split_bytes)
        self.batch_size = batch_size

    def parts(self, url, protocol):
        """Runs of whole row groups of about ``split_bytes`` (compressed, as stored): (first, last + 1)."""
        import pyarrow.parquet as pq

        if self.file_size(url, protocol) <= self.split_bytes:
            return [None]
        with fsspec.open(self.full_url(url, protocol), "rb") as f:
            meta = pq.ParquetFile(f).metadata
        sizes = [meta.row_group(g).total_compressed_size if hasattr(meta.row_group(g), "total_compressed_size")
                 else meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)]
        parts, first, size = [], 0, 0
        for g, nbytes in enumerate(sizes):
            size += nbytes
            if size >= self.split_bytes or g == len(sizes) - 1:
                parts.append((first, g + 1))
                first, size = g + 1, 0
        return parts if len(parts) > 1 else [None]

    def batches(self, f, part):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(f)
        if part is None:
            return pf.schema_arrow.names, 0, pf.iter_batches(batch_size=self.batch_size)
        groups = list(range(*part))
        first_row = sum(pf.metadata.row_group(g).num_rows for g in range(part[0]))
        return pf.schema_arrow.names, first_row, pf.iter_batches(batch_size=self.batch_size, row_groups=groups)


@register("arrow_reader")
class ArrowReader(_TableReader):
    """Arrow IPC files or streams (.arrow, .feather): one document per row, text in ``text_key``;
    other columns go to metadata."""

    name = "🏹 arrow_reader"

    def __init__(self, paths: list[str], limit: int = -1, text_key: str = "text", id_key: str = "id"):
        super().__init__(paths, limit, text_key, id_key)  # read whole: no split_bytes

    def batches(self, f, part):
        import pyarrow as pa

        source = pa.BufferReader(f.read())
        try:
            reader = pa.ipc.open_file(source)
            return reader.schema.names, 0, (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            source.seek(0)
            stream = pa.ipc.open_stream(source)
            return stream.schema.names, 0, iter(stream)


# ---------------------------------------------------------------- plain files


@register("files_reader")
class FilesReader(FileReader):
    """One document per file (text, HTML, ...). The id is the path relative to the glob's root;
    ``.gz`` files are opened transparently. Bytes are decoded as a browser would (byte-order
    mark, ``<meta charset>`` for HTML, UTF-8, else detection: GBK, Big5, Shift-JIS, cp1251...);
    HTML files get ``content_type: text/html`` for the extractor, others ``text/plain``. A file
    that no encoding decodes (more than a quarter replaced) is skipped, unless ``errors`` is
    ``replace``."""

    name = "📄 files_reader"

    def __init__(self, paths: list[str], limit: int = -1, errors: Literal["skip", "replace"] = "skip",
                 max_bytes: int = 50_000_000):
        super().__init__(paths, limit)
        self.errors, self.max_bytes = errors, max_bytes

    def read_file(self, url, protocol, rel, part=None):
        with self.open(url, protocol) as f:
            raw = f.read(self.max_bytes + 1)
        if len(raw) > self.max_bytes:
            self.skip("too_large", url, f"> {self.max_bytes} bytes")
            return
        rel_id = rel[:-3] if rel.endswith(".gz") else rel
        if b"\x00" in raw[:8192] and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            self.skip("binary_payload", url)
            return
        html = looks_like_html(rel_id, raw)
        text, encoding = decode(raw, None, None, html=html)
        self.stat_update(f"encoding_{encoding}")
        if text is None:
            if self.errors == "skip":
                self.skip("undecodable", url, f"(as {encoding})")
                return
            text = raw.decode(encoding, errors="replace")
        yield Document(text=text, id=rel_id, metadata={"source": rel_id, "encoding": encoding,
                                                        "content_type": "text/html" if html else "text/plain"})


# ---------------------------------------------------------------- Hugging Face datasets


@register("hf_dataset_reader")
class HFDatasetReader(Funnel, PipelineStep):
    """A Hugging Face ``datasets`` dataset: from disk (``path``, saved with ``save_to_disk``) or by
    ``name`` from the Hub when online. Rows are shared out between tasks in contiguous shards."""

    name = "🤗 hf_dataset_reader"
    type = "📖 - READER"
    is_reader = True

    def __init__(
        self,
        path: str | None = None,
        name: str | None = None,
        config: str | None = None,
        split: str = "train",
        text_key: str = "text",
        id_key: str = "id",
        limit: int = -1,
    ):
        super().__init__()
        if (path is None) == (name is None):
            raise ValueError("give exactly one of 'path' (a dataset saved on disk) or 'name' (a Hub dataset)")
        if path is not None:
            fs, _, matches = fsspec.get_fs_token_paths(path)
            if not matches or not fs.exists(matches[0]):
                raise InputError(f"input {path!r} does not exist")
            saved = [f"{matches[0]}/{n}" for n in ("state.json", "dataset_dict.json")]
            if not any(fs.exists(f) for f in saved):
                raise InputError(f"input {path!r} is not a dataset saved with save_to_disk (no state.json or "
                                 "dataset_dict.json); for files, use jsonl_reader, parquet_reader or arrow_reader")
        self.path, self.dataset_name, self.config, self.split = path, name, config, split
        self.text_key, self.id_key, self.limit = text_key, id_key, limit

    def _load(self):
        import datasets

        if self.path is not None:
            ds = datasets.load_from_disk(self.path)
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[self.split]
            return ds
        return datasets.load_dataset(self.dataset_name, self.config, split=self.split)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        ds = self._load()
        if self.text_key not in ds.column_names:
            raise ValueError(f"hf_dataset_reader: no column {self.text_key!r} (columns: {ds.column_names})")
        shard = ds.shard(num_shards=world_size, index=rank, contiguous=True)
        start = sum(len(ds.shard(world_size, r, contiguous=True)) for r in range(rank)) if world_size > 1 else 0
        source = self.path or self.dataset_name
        for i, row in enumerate(shard):
            if 0 < self.limit <= i:
                return
            doc = _doc_from_dict(row, self.text_key, self.id_key, f"{source}/{start + i}", source)
            if doc is None:
                self.skipped("no_text")
                continue
            if not doc.text.strip():
                self.dropped("empty")
                continue
            self.kept()
            self.update_doc_stats(doc)
            yield doc


# ---------------------------------------------------------------- outside a pipeline

_FORMATS = (
    ((".jsonl", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".ndjson"), JsonlReader),
    ((".parquet",), ParquetReader),
    ((".arrow", ".feather"), ArrowReader),
)


def expand_inputs(inputs: str | list[str]) -> list[str]:
    """Files behind folders (their files, not hidden ones), files and globs, in a stable order."""
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    files: list[str] = []
    for inp in map(str, inputs):
        fs, _, matches = fsspec.get_fs_token_paths(inp)
        # fsspec lists paths without their protocol: an object store's get it back, local ones stay paths
        full = fs.unstrip_protocol if "://" in inp and not inp.startswith("file://") else str
        if fs.isdir(inp):
            files += sorted(full(f) for f in fs.ls(inp, detail=False)
                            if fs.isfile(f) and not PurePosixPath(f).name.startswith("."))
        else:
            files += sorted(full(m) for m in matches if fs.isfile(m))
    if not files:
        raise InputError(f"no input documents in {[str(i) for i in inputs]}")
    return files


def reader_for(path: str) -> FileReader:
    """The reader of one file, by its name: JSON Lines, Parquet, Arrow, else one document per file."""
    name = path.lower()
    for suffixes, cls in _FORMATS:
        if name.endswith(suffixes):
            return cls([path])
    return FilesReader([path])


def documents(inputs: str | list[str], rank: int = 0, world_size: int = 1) -> Iterator[Document]:
    """Every document of ``inputs`` (folders, files, globs; any format ``reader_for`` knows), or
    the share of task ``rank`` of ``world_size``: whole files and parts of large ones, in turn."""
    readers = [reader_for(path) for path in expand_inputs(inputs)]
    units = [(reader, unit) for reader in readers for unit in (reader.units() if world_size > 1 else [None])]
    for reader, unit in units[rank::world_size]:
        yield from reader.run() if unit is None else reader.read_units([unit], rank)
