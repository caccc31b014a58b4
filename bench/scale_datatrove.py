"""datatrove's side of ``bench/scale.py``: one unit's pipeline, built from a JSON spec and run on
datatrove's ``LocalPipelineExecutor`` (the executor ``corpus run`` uses too).

    python -m bench.scale_datatrove SPEC.json     # scale.py writes the spec into the run folder

It runs in its own process, measured from outside by scale.py. Everything runs offline: the
language filter reads fastText's lid.176 from a local file (the ``lid.176.ftz`` that
``corpus.filters.language.default_model_path()`` finds) instead of downloading ``lid.176.bin``;
the Gopher, C4, FineWeb and MinHash steps use datatrove's default English word tokenizer, a blank
spaCy pipeline (offline once spaCy is installed), or a whitespace split with ``word_tokenizer:
whitespace``; the tokenizer unit trains a byte-level BPE with Hugging Face ``tokenizers`` (datatrove
has no tokenizer trainer) and encodes with datatrove's ``DocumentTokenizer``.

Seconds per executor go to ``OUTPUT/timings.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from datatrove.utils.lid import FT176LID
from datatrove.utils.word_tokenizers import WordTokenizer


class LocalFT176(FT176LID):
    """FT176LID reading the model from a local file (no download)."""

    def __init__(self, languages, path: str):
        super().__init__(languages)
        self.path = path

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.path)
        return self._model


class Whitespace(WordTokenizer):
    """A whitespace split (as bench/dedup.py gives datatrove's MinHash)."""

    def __init__(self):
        super().__init__("en")

    def word_tokenize(self, text, **kwargs):
        return text.split()

    def sent_tokenize(self, text, **kwargs):
        return [text]

    def span_tokenize(self, text, **kwargs):
        return [(0, len(text))]


def language_filter(spec: dict):
    from datatrove.pipeline.filters import LanguageFilter

    f = LanguageFilter(languages=spec["languages"], language_threshold=spec["language_threshold"])
    f.model = LocalFT176(spec["languages"], spec["lid_model"])
    return f


def quality_filters(spec: dict) -> list:
    """FineWeb's filters after language ID, in FineWeb's order and settings."""
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter

    return [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter()]


def minhash_config():
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(hash_config=HashConfig(precision=64))  # FineWeb's: 14 buckets x 8 hashes, 64-bit


def jsonl_reader(spec: dict):
    from datatrove.pipeline.readers import JsonlReader

    return JsonlReader(spec["input_dir"], glob_pattern=spec["input_glob"])


def run_executor(name: str, pipeline: list, spec: dict, timings: dict, tasks: int | None = None) -> None:
    from datatrove.executor import LocalPipelineExecutor

    tasks = tasks or spec["tasks"]
    ex = LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(spec["workers"], tasks),
                               logging_dir=str(Path(spec["output"]) / "logs" / name))
    t = time.perf_counter()
    ex.run()
    timings[name] = time.perf_counter() - t


def minhash_stages(spec: dict, docs_in, timings: dict, first: list) -> None:
    """datatrove's four MinHash stages: ``first`` + signatures, buckets (one task per bucket),
    clusters (one task), then the filter over ``docs_in`` (a reader of the same documents, in the
    same order per task) into ``docs/``."""
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.writers import JsonlWriter

    out = Path(spec["output"])
    cfg = minhash_config()
    from datatrove.utils.typeshelper import Languages

    tok = Whitespace() if spec.get("word_tokenizer") == "whitespace" else Languages.english
    run_executor("1-signatures", first + [MinhashDedupSignature(str(out / "minhash" / "sigs"), config=cfg, language=tok)],
                 spec, timings)
    run_executor("2-buckets", [MinhashDedupBuckets(str(out / "minhash" / "sigs"), str(out / "minhash" / "buckets"), config=cfg)],
                 spec, timings, tasks=cfg.num_buckets)
    run_executor("3-cluster", [MinhashDedupCluster(str(out / "minhash" / "buckets"), str(out / "minhash" / "remove"), config=cfg)],
                 spec, timings, tasks=1)
    run_executor("4-filter", [docs_in(), MinhashDedupFilter(str(out / "minhash" / "remove")), JsonlWriter(str(out / "docs"))],
                 spec, timings)


def main(spec_path: str) -> None:
    from datatrove.pipeline.writers import JsonlWriter

    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["output"])
    unit = spec["unit"]
    timings: dict[str, float] = {}
    if unit == "io":
        run_executor("io", [jsonl_reader(spec), JsonlWriter(str(out / "docs"))], spec, timings)
    elif unit == "text":
        run_executor("text", [jsonl_reader(spec), language_filter(spec), *quality_filters(spec), JsonlWriter(str(out / "docs"))],
                     spec, timings)
    elif unit == "dedup":
        minhash_stages(spec, lambda: jsonl_reader(spec), timings, [jsonl_reader(spec)])
    elif unit == "chain":
        from datatrove.pipeline.extractors import Trafilatura
        from datatrove.pipeline.readers import JsonlReader, WarcReader

        work = out / "work"
        first = [WarcReader(spec["input_dir"], glob_pattern=spec["input_glob"]),
                 Trafilatura(favour_precision=True, timeout=spec["extract_timeout"], deduplicate=False, include_tables=True),
                 language_filter(spec), *quality_filters(spec), JsonlWriter(str(work))]
        minhash_stages(spec, lambda: JsonlReader(str(work)), timings, first)
    elif unit == "tokenizer":
        train_bpe(spec, timings)
        from datatrove.pipeline.tokens import DocumentTokenizer

        run_executor("2-tokenize", [jsonl_reader(spec), DocumentTokenizer(str(out / "tokens"), str(out / "tokenizer.json"),
                                                                          eos_token="<|endoftext|>")], spec, timings)
    else:
        sys.exit(f"unknown unit {unit!r}")
    (out / "timings.json").write_text(json.dumps(timings, indent=1))


def train_bpe(spec: dict, timings: dict) -> None:
    """A byte-level BPE (Hugging Face ``tokenizers``) of the same vocabulary size as ours, trained
    on every document's text, in this process."""
    import glob
    import gzip

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    t = time.perf_counter()

    def texts():
        for path in sorted(glob.glob(str(Path(spec["input_dir"]) / spec["input_glob"]))):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                for line in f:
                    yield json.loads(line)["text"]

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=spec["vocab_size"], special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts(), trainer=trainer)
    Path(spec["output"]).mkdir(parents=True, exist_ok=True)
    tok.save(str(Path(spec["output"]) / "tokenizer.json"))
    timings["1-train-bpe"] = time.perf_counter() - t


if __name__ == "__main__":
    main(sys.argv[1])
