"""Evaluation text out of the training data: ``decontaminate``.

The index is built once, when the run loads the step: every evaluation item (a prompt and
its answer) becomes the hashes of its n-grams, sorted in one array that travels to the tasks
with the step. A document whose text holds any of those n-grams matched that item.

- **Text is normalised** on both sides the same way: Unicode NFKC (full-width forms become
  ASCII), case folded, punctuation and symbols dropped, whitespace collapsed.
- **Tokens** are words, except that every Han, Hiragana and Katakana character is a token of
  its own. An item written mostly in those scripts uses n-grams of ``ceil(2.5 n)`` tokens
  (``cjk_n``), others ``n``.
- **What is indexed** (``match``): ``all`` (the default) takes every n-gram of the prompt
  followed by its answer, so it finds the answer, the prompt, and n-grams spanning both;
  ``answer`` takes only the n-grams that hold at least one answer token (datatrove's
  ``NGramsDecont`` default). An item shorter than its n-gram length cannot match; the log
  and the step's counters say how many such items each set has.
- **Evaluation sets** are files or folders, local or fsspec URLs: JSON lines (``.jsonl``,
  ``.json``, compressed or not), Parquet, or a Hugging Face dataset saved with
  ``save_to_disk`` (every split, unless ``split`` names one). ``prompt_key`` and
  ``answer_key`` name the fields; an answer may be a string, a list of strings (every one
  is indexed), or an integer that picks one of ``choices_key``'s options (MMLU's layout).

``action: drop`` (the default) drops a matched document (funnel reason
``contaminated_<name>``); ``action: report`` keeps it, with ``metadata.contamination``
naming the sets. Either way the step counts matched documents per set
(``contaminated_<name>``) and each task writes its matches (document id, set, item,
how many of its n-grams, the matched text) to the run folder; the runner gathers them into
``decontamination.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import math
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable, Iterator, Literal

import numpy as np
import regex
import xxhash
from datatrove.data import Document, DocumentsPipeline

from corpus.core.funnel import Filter
from corpus.core.io import atomic_path
from corpus.core.registry import register

CJK_CHAR = r"\p{Han}\p{Hiragana}\p{Katakana}"
TOKEN = regex.compile(rf"[{CJK_CHAR}]|[^\s\p{{P}}\p{{S}}{CJK_CHAR}]+")
IS_CJK = regex.compile(rf"[{CJK_CHAR}]")
CJK_FACTOR = 2.5
SHOWN_SPANS, SPAN_CHARS = 3, 300  # matched text listed per match in decontamination.jsonl


@dataclass(frozen=True)
class Match:
    ngrams: int  # n-grams of the item found in the document
    spans: list[str]  # the matched text, normalised: runs of those n-grams merged


def tokens(text: str) -> list[str]:
    """Normalised tokens: NFKC, case folded, no punctuation or symbols; CJK characters one by one."""
    return TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def _join(toks: list[str]) -> str:
    """Normalised tokens back to text: CJK characters side by side, words with a space."""
    out = []
    for i, t in enumerate(toks):
        if i and not (IS_CJK.match(t) and IS_CJK.match(toks[i - 1])):
            out.append(" ")
        out.append(t)
    return "".join(out)


def _token_hashes(toks: list[str]) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(t) for t in toks), dtype=np.uint64, count=len(toks))


def ngram_hashes(token_hashes: np.ndarray, n: int) -> np.ndarray:
    """The hash of every n-gram (window of n tokens), position by position: a polynomial over
    the tokens' 64-bit hashes (arithmetic modulo 2^64)."""
    count = len(token_hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    out = np.zeros(count, dtype=np.uint64)
    base = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for j in range(n):
            out = out * base + token_hashes[j:j + count]
    return out


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set, as the YAML names it."""

    path: str
    prompt_key: str | None = "question"
    answer_key: str | None = "answer"
    name: str | None = None
    choices_key: str | None = "choices"
    id_key: str | None = None
    split: str | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        stem = PurePosixPath(self.path.rstrip("/")).name
        return stem.split(".")[0] or "eval"


def _rows(path: str, split: str | None) -> Iterator[dict]:
    """The rows of an evaluation file or saved dataset, local or on any fsspec filesystem."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(path)
    if not fs.exists(root):
        raise FileNotFoundError(f"evaluation set {path!r} does not exist")
    if fs.isdir(root):
        if not (fs.exists(f"{root}/dataset_info.json") or fs.exists(f"{root}/dataset_dict.json")):
            raise ValueError(f"evaluation set {path!r} is a folder but not a dataset saved with save_to_disk")
        import datasets

        saved = datasets.load_from_disk(path)
        if isinstance(saved, datasets.DatasetDict):
            if split is not None and split not in saved:
                raise ValueError(f"evaluation set {path!r} has no split {split!r} (it has {', '.join(saved)})")
            parts = [saved[split]] if split else [saved[s] for s in saved]
        else:
            parts = [saved]
        for part in parts:
            yield from part
        return
    name = PurePosixPath(root).name
    if ".parquet" in name:
        import pyarrow.parquet as pq

        with fs.open(root, "rb") as f:
            yield from pq.read_table(f).to_pylist()
        return
    if not any(s in name for s in (".jsonl", ".json", ".ndjson")):
        raise ValueError(f"evaluation set {path!r}: give a .jsonl/.json(.gz/.zst) or .parquet file, or a saved dataset")
    with fsspec.open(path, "rt", encoding="utf-8", compression="infer") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"evaluation set {path!r}, line {lineno}: not JSON ({e.msg})") from None


def _answers(row: dict, es: EvalSet) -> list[str]:
    if not es.answer_key:
        return [""]
    value = row.get(es.answer_key)
    if isinstance(value, bool) or value is None:
        return [""]
    if isinstance(value, int) and es.choices_key and isinstance(row.get(es.choices_key), list):
        choices = row[es.choices_key]
        return [str(choices[value])] if 0 <= value < len(choices) else [""]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None] or [""]
    return [str(value)]


class Index:
    """The n-gram hashes of every item of the evaluation sets, sorted, with the item each came
    from: ``lookup(hashes)`` gives the positions that hit and their items."""

    def __init__(self, eval_sets: list[EvalSet], n: int, cjk_n: int, match: str):
        def items() -> Iterator[tuple[int, str, list[str], list[list[str]]]]:
            for s, es in enumerate(eval_sets):
                for row_no, row in enumerate(_rows(es.path, es.split)):
                    prompt = tokens(str(row.get(es.prompt_key) or "")) if es.prompt_key else []
                    item_id = str(row.get(es.id_key, row_no)) if es.id_key else str(row_no)
                    yield s, item_id, prompt, [tokens(answer) for answer in _answers(row, es)]

        self.sets = [es.label for es in eval_sets]
        self._build(items(), n, cjk_n, match)

    @classmethod
    def of_texts(cls, texts: Iterable[str], n: int = 13, cjk_n: int | None = None, name: str = "eval") -> "Index":
        """An index of whole texts (each an item of one set), normalised and cut into n-grams
        as the ``decontaminate`` step does: ``Index.of_texts(texts).holds(doc.text)``."""
        index = cls.__new__(cls)
        index.sets = [name]
        index._build(((0, str(k), [], [tokens(t)]) for k, t in enumerate(texts)), n, cjk_n or math.ceil(CJK_FACTOR * n), "all")
        return index

    def _build(self, items: Iterable[tuple[int, str, list[str], list[list[str]]]], n: int, cjk_n: int, match: str) -> None:
        self.items: list[tuple[int, str]] = []  # (set index, item id)
        self.short: dict[str, int] = {}  # items too short to match, per set
        self.lengths: set[int] = set()
        keys, owners = [], []
        for s, item_id, prompt, answers in items:
            item = len(self.items)
            self.items.append((s, item_id))
            indexed = False
            for answer in answers:
                toks = prompt + answer
                cjk = sum(1 for t in toks if IS_CJK.match(t))
                size = cjk_n if cjk * 2 > len(toks) else n
                hashes = ngram_hashes(_token_hashes(toks), size)
                if match == "answer":  # only the windows that end inside the answer
                    hashes = hashes[max(0, len(prompt) - size + 1):]
                if len(hashes):
                    indexed = True
                    self.lengths.add(size)
                    keys.append(hashes)
                    owners.append(np.full(len(hashes), item, dtype=np.int32))
            if not indexed:
                label = self.sets[s]
                self.short[label] = self.short.get(label, 0) + 1
        keys_all = np.concatenate(keys) if keys else np.empty(0, dtype=np.uint64)
        owners_all = np.concatenate(owners) if owners else np.empty(0, dtype=np.int32)
        order = np.lexsort((owners_all, keys_all))
        self.keys, self.owners = keys_all[order], owners_all[order]
        # one row per (hash, item): an n-gram repeated inside an item counts once
        if len(self.keys):
            keep = np.ones(len(self.keys), dtype=bool)
            keep[1:] = (self.keys[1:] != self.keys[:-1]) | (self.owners[1:] != self.owners[:-1])
            self.keys, self.owners = self.keys[keep], self.owners[keep]

    def holds(self, text: str) -> bool:
        """Whether ``text`` holds any indexed n-gram."""
        hashed = _token_hashes(tokens(text))
        return any(next(self.lookup(ngram_hashes(hashed, size)), None) is not None for size in sorted(self.lengths))

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, hashes: np.ndarray) -> Iterator[tuple[int, int]]:
        """(position in ``hashes``, item) for every hash that is in the index."""
        if not len(hashes) or not len(self.keys):
            return
        lo = np.searchsorted(self.keys, hashes, side="left")
        hit = np.flatnonzero((lo < len(self.keys)) & (self.keys[np.minimum(lo, len(self.keys) - 1)] == hashes))
        for pos in hit:
            k = lo[pos]
            while k < len(self.keys) and self.keys[k] == hashes[pos]:
                yield int(pos), int(self.owners[k])
                k += 1


def _safe(name: str) -> str:
    return regex.sub(r"[^\w-]+", "_", name)


@register("decontaminate")
class Decontaminate(Filter):
    """Finds documents that hold evaluation text (a prompt, its answer, or n-grams across
    both) and drops or reports them; each match goes to ``decontamination.jsonl``."""

    name = "🧪 decontaminate"

    def __init__(self, eval_sets: list[dict], n: int = 13, cjk_n: int | None = None,
                 action: Literal["drop", "report"] = "drop", match: Literal["all", "answer"] = "all"):
        super().__init__()
        if action not in ("drop", "report"):
            raise ValueError("action must be 'drop' or 'report'")
        if match not in ("all", "answer"):
            raise ValueError("match must be 'all' or 'answer'")
        if n < 3:
            raise ValueError("n must be at least 3: shorter n-grams match ordinary text")
        if not eval_sets:
            raise ValueError("eval_sets: name at least one evaluation set ({path: ..., prompt_key: ..., answer_key: ...})")
        sets = []
        for spec in eval_sets:
            if not isinstance(spec, dict) or "path" not in spec:
                raise ValueError(f"eval_sets: each entry is a mapping with a path, got {spec!r}")
            unknown = sorted(set(spec) - set(EvalSet.__dataclass_fields__))
            if unknown:
                raise ValueError(f"eval_sets: unknown key {unknown[0]!r}; keys: {', '.join(EvalSet.__dataclass_fields__)}")
            sets.append(EvalSet(**spec))
        labels = [es.label for es in sets]
        if len(set(labels)) != len(labels):
            raise ValueError(f"eval_sets: two sets are named {sorted(x for x in labels if labels.count(x) > 1)[0]!r}; "
                             "give each a distinct name")
        self.n, self.cjk_n = n, cjk_n or math.ceil(CJK_FACTOR * n)
        self.action = action
        self.index = Index(sets, self.n, self.cjk_n, match)
        self.match_folder: str | None = None  # set by the runner: where each task writes its matches
        from loguru import logger

        logger.info(f"decontaminate: {len(self.index.items)} evaluation items, {len(self.index)} n-grams"
                    + "".join(f"; {k}: {v} items shorter than the n-gram length cannot match"
                              for k, v in self.index.short.items()))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        matches: list[dict] = []
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for doc in data:
                self.received()
                with self.track_time():
                    found = self.find(doc.text)
                if not found:
                    self.kept()
                    self.update_doc_stats(doc)
                    yield doc
                    continue
                sets = sorted({self.index.sets[self.index.items[item][0]] for item in found})
                for name in sets:
                    self.stat_update(f"contaminated_{_safe(name)}")
                matches += [{"id": doc.id, "eval_set": self.index.sets[self.index.items[item][0]],
                             "item": self.index.items[item][1], "ngrams_hit": m.ngrams, "spans": m.spans,
                             "action": self.action}
                            for item, m in found.items()]
                if self.action == "report":
                    doc.metadata["contamination"] = sets
                    self.kept()
                    self.update_doc_stats(doc)
                    yield doc
                    continue
                reason = f"contaminated_{_safe(sets[0])}"
                self.dropped(reason)
                if writer is not None:
                    doc.metadata["filter_reason"] = reason
                    writer.write(doc, rank)
        if self.match_folder is not None:
            with atomic_path(f"{self.match_folder}/{rank:05d}.jsonl") as tmp:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in matches)

    def find(self, text: str) -> dict[int, Match]:
        """The items whose n-grams ``text`` holds: for each, how many n-grams, and the matched
        text (runs of overlapping n-grams merged into spans of normalised tokens, longest first)."""
        toks = tokens(text)
        hashed = _token_hashes(toks)
        hits: dict[int, list[tuple[int, int]]] = {}
        for size in sorted(self.index.lengths):
            for pos, item in self.index.lookup(ngram_hashes(hashed, size)):
                hits.setdefault(item, []).append((pos, pos + size))
        found = {}
        for item, ranges in hits.items():
            spans: list[list[int]] = []
            for start, end in sorted(ranges):
                if spans and start <= spans[-1][1]:
                    spans[-1][1] = max(spans[-1][1], end)
                else:
                    spans.append([start, end])
            spans.sort(key=lambda ab: ab[0] - ab[1])
            found[item] = Match(len(ranges), [_join(toks[a:b])[:SPAN_CHARS] for a, b in spans[:SHOWN_SPANS]])
        return found

    def filter(self, doc: Document) -> bool:  # the step reports its matches (run)
        return True
