"""The funnel contract: how a step says what it did with the documents it saw.

A step mixes in ``Funnel`` and calls, for every document:

- ``self.received()`` when a document comes in (readers: ``self.file_done()`` per input file read),
- ``self.kept()`` when it passes one on,
- ``self.dropped(reason)`` when it decides a document does not belong (a filter's verdict,
  a page without main text, a record that is not HTML),
- ``self.skipped(reason)`` when it could not process one (a timeout, a corrupt record, bad
  JSON): the input was bad, not the document,
- ``self.lines_removed(reason, n)`` when it cleans lines out of a document it keeps.

so that, per step, ``in = kept + dropped + skipped``. The counts travel in datatrove's own
stats (keys under ``funnel.``); the runner's summary, the progress display and the report read
them through ``counts()`` and never guess from other counter names. Filters subclass
``Filter``: ``filter(doc)`` returns True, or ``(False, reason)``, and the funnel is kept for them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result

PREFIX = "funnel."
IN, KEPT, FILES = PREFIX + "in", PREFIX + "kept", PREFIX + "files"
DROPPED, SKIPPED, LINES = PREFIX + "dropped.", PREFIX + "skipped.", PREFIX + "lines_removed."
# datatrove's own bookkeeping, not a step's story
_DATATROVE_KEYS = ("total", "forwarded", "dropped", "documents", "doc_len", "doc_len_tokens", "batches")


class Funnel:
    """Mixin for a datatrove ``PipelineStep``: the four verbs of the funnel."""

    def received(self: PipelineStep, n: int = 1) -> None:
        self.stat_update(IN, value=n)

    def kept(self: PipelineStep, n: int = 1) -> None:
        self.stat_update(KEPT, value=n)

    def dropped(self: PipelineStep, reason: str, n: int = 1) -> None:
        self.stat_update(DROPPED + reason, value=n)

    def skipped(self: PipelineStep, reason: str, n: int = 1) -> None:
        self.stat_update(SKIPPED + reason, value=n)

    def lines_removed(self: PipelineStep, reason: str, n: int = 1) -> None:
        if n:
            self.stat_update(LINES + reason, value=n)

    def file_done(self: PipelineStep, n: int = 1) -> None:
        self.stat_update(FILES, value=n)


class Filter(Funnel, BaseFilter):
    """A step that keeps or drops each document: ``filter(doc)`` returns True to keep it, or
    ``(False, reason)``. Dropped documents go to the ``exclusion_writer`` when the run saves
    them (``save_removed``), with ``metadata.filter_reason``."""

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for doc in data:
                self.received()
                with self.track_time():
                    keep, reason = get_filter_result(self.filter(doc))
                if keep:
                    self.kept()
                    self.update_doc_stats(doc)
                    yield doc
                    continue
                reason = reason or "filtered"
                self.dropped(reason)
                if writer is not None:
                    doc.metadata["filter_reason"] = reason
                    writer.write(doc, rank)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError


@dataclass
class Counts:
    """One step's funnel: documents in (None for readers, which count files), out, dropped and
    skipped by reason, and the step's other counters."""

    documents_in: int | None = None
    documents_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    files: int | None = None
    lines_removed: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)


def counts(parts: list[dict[str, int]], reader: bool = False) -> Counts:
    """The funnel of one YAML step from the stats of the datatrove steps that carried its
    documents, in order (one for most steps; two for minhash_dedup, whose first stage takes the
    documents in and whose last lets them out): documents in from the first part, out from
    the last, reasons summed. A reader counts files instead of documents in."""
    c = Counts(documents_in=None if reader else (parts[0].get(IN, 0) if parts else 0),
               documents_out=parts[-1].get(KEPT, 0) if parts else 0, files=0 if reader else None)
    for stats in parts:
        if reader:
            c.files += stats.get(FILES, 0)
        for key, value in stats.items():
            for prefix, into in ((DROPPED, c.dropped), (SKIPPED, c.skipped), (LINES, c.lines_removed)):
                if key.startswith(prefix):
                    into[key[len(prefix):]] = into.get(key[len(prefix):], 0) + value
    c.counters = other_counters(parts)
    return c


def other_counters(parts: list[dict[str, int]]) -> dict[str, int]:
    """A step's own counters (languages seen, pairs found, ...), outside the funnel and
    datatrove's bookkeeping."""
    out: dict[str, int] = {}
    for stats in parts:
        for key, value in stats.items():
            if not key.startswith(PREFIX) and key not in _DATATROVE_KEYS and "/" not in key and "." not in key:
                out[key] = out.get(key, 0) + value
    return out
