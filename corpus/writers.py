"""Writers: datatrove's JSONL and Parquet writers, made atomic.

Each task writes ``<path>/_tmp/<rank>.<ext>`` and renames it to ``<path>/<rank>.<ext>`` only once
the file is complete, so a reader never sees half a file and a re-run of a task replaces its
file instead of appending to it. A task that fails removes its temporary file. A relative ``path`` is inside the run's output folder.
Documents pass through, so a writer can sit in the middle of a pipeline.
"""

from __future__ import annotations

import json
from typing import Literal

from datatrove.data import DocumentsPipeline
from loguru import logger
from datatrove.pipeline.writers.jsonl import JsonlWriter as _JsonlWriter
from datatrove.pipeline.writers.parquet import ParquetWriter as _ParquetWriter

from corpus.core import chat
from corpus.core.funnel import Funnel
from corpus.core.registry import register

TMP = "_tmp"
COMPRESSIONS = {"gzip": ".gz", "zstd": ".zst", "none": ""}  # file name suffix after .jsonl


class AtomicWriter(Funnel):
    """Mixin for datatrove DiskWriters whose file name is ``${rank}.<ext>``: files are written
    under ``_tmp/`` and renamed into place when the writer closes (after the last document of a
    task, also when the writer serves as a filter's exclusion writer)."""

    output_param = "path"  # the runner resolves it against the run folder
    extension: str

    def _get_output_filename(self, document, rank=0, **kwargs):
        name = super()._get_output_filename(document, rank, **kwargs)
        if str(rank) != "XXXXX":  # datatrove also asks for a name template to count files
            self.__dict__.setdefault("_pending", set()).add(name)
        return f"{TMP}/{name}"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        final = f"{rank:05d}{self.extension}"
        if self.output_folder.exists(final):  # an earlier, interrupted attempt of this task
            self.output_folder.rm(final)
        yield from super().run(self._counted(data), rank, world_size)  # closes (and so publishes) its files at the end

    def _counted(self, data: DocumentsPipeline) -> DocumentsPipeline:
        for doc in data:  # a writer keeps every document it writes
            self.received()
            self.kept()
            yield doc

    def close(self):
        super().close()
        for name in sorted(self.__dict__.pop("_pending", ())):
            if self.output_folder.exists(f"{TMP}/{name}"):
                self.output_folder.mv(f"{TMP}/{name}", name)

    def __exit__(self, exc_type, exc_val, exc_tb):
        if exc_type is None:
            return super().__exit__(exc_type, exc_val, exc_tb)
        # the task failed: its partial files are removed, never published
        super(AtomicWriter, self).close()
        for name in sorted(self.__dict__.pop("_pending", ())):
            if self.output_folder.exists(f"{TMP}/{name}"):
                self.output_folder.rm(f"{TMP}/{name}")


class _JsonLines(AtomicWriter, _JsonlWriter):
    """JSON Lines, ``${rank}.jsonl[.gz|.zst]``, one line per document as ``adapter`` makes it."""

    def __init__(self, path: str, compression: str, adapter=None):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}")
        self.extension = ".jsonl" + COMPRESSIONS[compression]
        super().__init__(path, output_filename="${rank}" + self.extension,
                         compression=None if compression == "none" else compression, adapter=adapter)
        self.path = path


@register("jsonl_writer")
class JsonlWriter(_JsonLines):
    """Documents as JSON Lines, {"text", "id", "metadata"} per line: gzipped (the default), zstd
    (several times faster to write and read, about as small), or uncompressed."""

    name = "🐿 jsonl_writer"

    def __init__(self, path: str = "docs", compression: Literal["gzip", "zstd", "none"] = "gzip"):
        super().__init__(path, compression)


@register("chat_writer")
class ChatWriter(_JsonLines):
    """Chat documents (``chat_reader``'s) back in the one conversation format: per line the id,
    ``messages`` (OpenAI roles and content; for a preference pair the prompt, with ``chosen`` and
    ``rejected``) and the ``metadata`` keys named (those a document has). A document whose text
    no longer parses as a conversation is a counted skip (``unparsable``), not written; put
    ``conversation_filter`` before the writer to drop bad conversations with their reasons. Not
    a ``jsonl_writer``: the stages after the steps (tokenizer, shards) read the documents of a
    ``jsonl_writer`` (give one too), not these records."""

    name = "💬 chat_writer"

    def __init__(self, path: str = "chat", compression: Literal["gzip", "zstd", "none"] = "gzip",
                 metadata: list[str] | None = None):
        super().__init__(path, compression, adapter=_chat_row)
        self.metadata = ["language"] if metadata is None else list(metadata)
        clash = sorted(set(self.metadata) & {"id", "messages", "chosen", "rejected"})
        if clash:
            raise ValueError(f"metadata key {clash[0]!r} is a key of the conversation record itself")

    def _counted(self, data: DocumentsPipeline) -> DocumentsPipeline:
        for doc in data:
            self.received()
            try:
                chat.parse(doc.text)
            except chat.ChatFormatError as e:
                self.skipped(e.reason)
                logger.warning(f"{self.yaml_name}: skipped ({e.reason}) document {doc.id}: {e.detail}")
                continue
            self.kept()
            yield doc


@register("parquet_writer")
class ParquetWriter(AtomicWriter, _ParquetWriter):
    """Documents as Parquet: columns text, id, and metadata as a JSON string (documents from
    different sources carry different metadata keys, which one Arrow struct type cannot hold)."""

    name = "📒 parquet_writer"
    extension = ".parquet"

    def __init__(self, path: str = "docs", compression: str = "zstd"):
        super().__init__(
            path, output_filename="${rank}.parquet", compression=compression, max_file_size=-1, adapter=_flat_row
        )
        self.path = path


def _flat_row(self, document) -> dict:
    return {"text": document.text, "id": document.id, "metadata": json.dumps(document.metadata, ensure_ascii=False)}


def _chat_row(self, document) -> dict:
    conv = chat.parse(document.text)
    conv.id = document.id
    row = chat.to_record(conv)
    row.update((k, document.metadata[k]) for k in self.metadata if k in document.metadata)
    return row
