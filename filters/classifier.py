"""A quality classifier you train on your own examples (fastText), and the step that applies it.

The approach of FineWeb-Edu, DCLM and CCI3-HQ: rank documents with a trained model rather than
only with rules. ``train_classifier`` reads positive and negative documents from anything the
readers know (JSONL, Parquet, Arrow, text files, a run's ``docs/`` and ``removed/``), or one
labelled file whose ``label_key`` says which is which; keeps a held-out split (by a hash of the
document id, so the same documents are held out on every run); trains fastText's supervised
classifier on word uni- and bigrams and the character 3-6-grams inside words, with every CJK, Thai, Lao, Khmer, Myanmar and Tibetan
character a word of its own, so that Chinese and Japanese have bigrams to learn from too; and
writes ``model.bin`` and ``card.json`` (data sizes, settings, precision, recall and ROC AUC on
the held-out split, overall and per language, time).

``quality_classifier`` stores the model's probability of the positive class in
``metadata.quality_score`` and, with ``min_score``, drops documents below it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import regex
from datatrove.data import Document
from loguru import logger

from corpus.core.funnel import Filter
from corpus.core.io import write_json
from corpus.core.registry import register, require_at_least

POSITIVE, NEGATIVE = "__label__keep", "__label__drop"
_OWN_WORD = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}\p{P}\p{S}]")
_TABLE: dict[int, str] = {}  # str.translate table, built on first use: 5x faster than a regex
_MODELS: dict[str, object] = {}  # one loaded model per path and process, never pickled with a step
# models that ship with corpus, by name (``quality_classifier: {model: hplt2}``)
BUNDLED = {"hplt2": Path(__file__).parent / "data" / "quality" / "hplt2" / "model.ftz"}


def features(text: str, max_chars: int = 3000) -> str:
    """The classifier's view of a text: lower case, digits as 0, one line, and every character of
    a script written without spaces (and every punctuation mark) a word of its own."""
    if not _TABLE:
        for cp in range(0x30000):  # the planes where these scripts live
            c = chr(cp)
            if _OWN_WORD.match(c):
                _TABLE[cp] = f" {c} "
            elif c.isdigit():
                _TABLE[cp] = "0"
            elif c.isspace():
                _TABLE[cp] = " "  # fastText reads one line per document; it skips repeated spaces
    return text[:max_chars].lower().translate(_TABLE)


def held_out(doc_id: str, fraction: float) -> bool:
    """Whether a document belongs to the held-out split: a stable hash of its id, so the same
    documents are held out whatever the order or the machine."""
    h = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")
    return h / 2**64 < fraction


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """Area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half); None when one class is missing."""
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum, i = 0.0, 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        rank_sum += sum(mean_rank for k in range(i, j + 1) if labels[order[k]])
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def metrics(scores: list[float], labels: list[bool], threshold: float = 0.5) -> dict:
    tp = sum(s >= threshold and y for s, y in zip(scores, labels))
    fp = sum(s >= threshold and not y for s, y in zip(scores, labels))
    fn = sum(s < threshold and y for s, y in zip(scores, labels))
    auc = roc_auc(scores, labels)
    return {"documents": len(labels), "positive": sum(labels),
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "roc_auc": round(auc, 4) if auc is not None else None}


@dataclass
class ClassifierConfig:
    held_out: float = 0.2  # share of documents (by id hash) kept aside for the card's figures
    epoch: int = 25
    lr: float = 0.5
    word_ngrams: int = 2
    minn: int = 3  # character n-grams of 3-6 inside each word (0: none): Russian's inflections
    maxn: int = 6  # share them; out-of-fold on the labelled dev excerpts, ru AUC .70 -> .79
    dim: int = 32
    min_count: int = 1
    bucket: int = 100_000
    max_chars: int = 3000
    threads: int = 1  # fastText with one thread is reproducible; more is faster
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.held_out < 1:
            raise ValueError(f"held_out must be between 0 and 1, got {self.held_out}")
        require_at_least(self, 1, "epoch", "word_ngrams", "dim", "min_count", "bucket", "max_chars", "threads")
        if self.minn < 0 or self.maxn < self.minn:
            raise ValueError(f"character n-grams need 0 <= minn <= maxn, got minn {self.minn}, maxn {self.maxn}")


def _language(doc: Document) -> str:
    return str(doc.metadata.get("language") or doc.metadata.get("lang") or "unknown")


def labelled_documents(positive: list[str], negative: list[str], label_key: str | None):
    """(document, label) pairs: every document of ``positive`` is True and of ``negative`` False;
    with ``label_key``, the documents of ``positive`` carry their own label in that metadata
    key (documents without a true/false there are counted and left out)."""
    from corpus.readers import documents

    unlabelled = 0
    if label_key:
        for doc in documents(positive):
            label = doc.metadata.get(label_key)
            if isinstance(label, bool):
                yield doc, label
            else:
                unlabelled += 1
    else:
        for doc in documents(positive):
            yield doc, True
        for doc in documents(negative):
            yield doc, False
    if unlabelled:
        logger.info(f"quality classifier: {unlabelled} documents without a true/false {label_key!r} left out")


def train_classifier(positive: list[str], negative: list[str], output: str | Path,
                     cfg: ClassifierConfig | None = None, label_key: str | None = None) -> dict:
    """Train, evaluate on the held-out split, write ``model.bin`` and ``card.json``; return the card."""
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None
    cfg = cfg or ClassifierConfig()
    if not label_key and not negative:
        raise ValueError("give negative documents, or one labelled input with a label key")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    held: list[tuple[str, bool, str]] = []
    sizes = {"train": {"positive": 0, "negative": 0}, "held_out": {"positive": 0, "negative": 0}}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=out, delete=False, encoding="utf-8") as f:
        train_file = f.name
        for doc, label in labelled_documents(positive, negative, label_key):
            text = features(doc.text, cfg.max_chars)
            if not text.strip():
                continue
            split = "held_out" if held_out(str(doc.id), cfg.held_out) else "train"
            sizes[split]["positive" if label else "negative"] += 1
            if split == "held_out":
                held.append((text, label, _language(doc)))
            else:
                f.write(f"{POSITIVE if label else NEGATIVE} {text}\n")
    trained_file = os.path.join(out, f".model-{os.getpid()}.bin")  # renamed to model.bin once evaluated
    try:
        for split in ("train", "held_out"):
            if not sizes[split]["positive"] or not sizes[split]["negative"]:
                raise ValueError(f"the {split} split has no {'positive' if not sizes[split]['positive'] else 'negative'} "
                                 f"documents ({sizes}): give more documents of both kinds")
        seed_used, lr_used = train_fasttext(train_file, cfg, trained_file)
        model = fasttext.load_model(trained_file)
    except BaseException:
        if os.path.exists(trained_file):
            os.unlink(trained_file)
        raise
    finally:
        os.unlink(train_file)
    trained = time.perf_counter() - start
    scores = [positive_probability(model, text) for text, _, _ in held]
    labels = [label for _, label, _ in held]
    by_language = {}
    for lang in sorted({lang for _, _, lang in held}):
        idx = [i for i, (_, _, l) in enumerate(held) if l == lang]
        by_language[lang] = metrics([scores[i] for i in idx], [labels[i] for i in idx])
    os.replace(trained_file, out / "model.bin")  # complete, then renamed (atomic)
    card = {
        "model": "model.bin", "kind": "fastText supervised", "positive_label": POSITIVE,
        "inputs": {"positive": list(positive), "negative": list(negative), "label_key": label_key},
        "documents": sizes, "settings": asdict(cfg),
        "held_out": metrics(scores, labels), "held_out_by_language": by_language,
        "seed_used": seed_used, "lr_used": lr_used, "train_seconds": round(trained, 2), "model_bytes": (out / "model.bin").stat().st_size,
    }
    write_json(out / "card.json", card)
    return card


# fastText's training, run in a fresh Python process: after other trainings in the same process it
# often stops with "Encountered NaN" on data that trains fine in a new one (seen with
# fasttext-numpy2-wheel 0.9.2: the same file, seed and settings fail in-process and pass fresh).
_TRAIN = """
import json, sys
import fasttext
job = json.loads(sys.argv[1])
for seed, lr in job["tries"]:
    try:
        model = fasttext.train_supervised(input=job["input"], seed=seed, lr=lr, verbose=0, **job["settings"])
    except RuntimeError as e:
        if "NaN" not in str(e):
            raise
        print(json.dumps({"nan": [seed, lr]}), flush=True)
        continue
    model.save_model(job["output"])
    print(json.dumps({"used": [seed, lr]}), flush=True)
    sys.exit(0)
sys.exit(3)
"""


def train_fasttext(train_file: str, cfg: ClassifierConfig, output: str) -> tuple[int, float]:
    """fastText's supervised training in a fresh process (``_TRAIN``), saved to ``output``; returns
    the seed and learning rate that made the model. Should it stop with "Encountered NaN" all the
    same, the next seeds are tried, then half the rate."""
    import subprocess
    import sys

    settings = {"epoch": cfg.epoch, "wordNgrams": cfg.word_ngrams, "minn": cfg.minn, "maxn": cfg.maxn, "dim": cfg.dim,
                "minCount": cfg.min_count, "bucket": cfg.bucket, "thread": cfg.threads}
    tries = [(cfg.seed + i, cfg.lr) for i in range(4)] + [(cfg.seed + i, cfg.lr / 2) for i in range(4)]
    job = {"input": train_file, "output": output, "settings": settings, "tries": tries}
    proc = subprocess.run([sys.executable, "-c", _TRAIN, json.dumps(job)], capture_output=True, text=True)
    used = None
    for line in proc.stdout.splitlines():
        event = json.loads(line)
        if "nan" in event:
            logger.warning(f"quality classifier: fastText stopped (Encountered NaN) with seed {event['nan'][0]}, "
                           f"lr {event['nan'][1]}; training again")
        used = event.get("used", used)
    if proc.returncode == 3:
        raise RuntimeError(f"fastText stopped with NaN {len(tries)} times (seeds {cfg.seed}-{cfg.seed + 3}, "
                           f"lr {cfg.lr} and {cfg.lr / 2}): lower lr or epoch")
    if proc.returncode != 0 or used is None:
        raise RuntimeError(f"fastText training failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return int(used[0]), float(used[1])


def load_classifier(path: str):
    if path not in _MODELS:
        import fasttext

        if not os.path.isfile(path):
            raise FileNotFoundError(f"quality model {path!r} does not exist: train one with `corpus quality train`")
        fasttext.FastText.eprint = lambda *a, **k: None
        _MODELS[path] = fasttext.load_model(path)
    return _MODELS[path]


def positive_probability(model, text: str) -> float:
    labels, probs = model.predict(text, k=2)
    for label, p in zip(labels, probs):
        if label == POSITIVE:
            return float(min(1.0, max(0.0, p)))
    return 0.0


def read_card(model_path: str) -> dict:
    card = Path(model_path).with_name("card.json")
    return json.loads(card.read_text()) if card.is_file() else {}


@register("quality_classifier")
class QualityClassifier(Filter):
    """Scores each document with a classifier from ``corpus quality train``: the probability that
    it is like the positive examples, in metadata.quality_score; with ``min_score``, drops those
    below (reason ``low_classifier_score``).

    ``model``: a model.bin (or .ftz) path, or ``hplt2``, the bundled model (zh, ru, en web text:
    ``data/quality/hplt2/``, see its card). ``min_score``: one score for every document, or one per
    language (``{zh: 0.05, ru: 0.6}``: documents of other languages are scored, never dropped),
    or ``card``: the per-language scores in the model's card."""

    name = "🎯 quality_classifier"

    def __init__(self, model: str, min_score: float | dict[str, float] | str | None = None,
                 max_chars: int | None = None):
        super().__init__()
        model = str(BUNDLED.get(model, model))
        if not os.path.isfile(model):
            raise FileNotFoundError(f"quality model {model!r} does not exist: train one with `corpus quality train`, "
                                    f"or use a bundled one ({', '.join(BUNDLED)})")
        card = read_card(model)
        if min_score == "card":
            if not card.get("min_score_by_language"):
                raise ValueError(f"min_score: card, but the card of {model!r} has no min_score_by_language")
            min_score = card["min_score_by_language"]
        elif isinstance(min_score, str):
            raise ValueError(f"min_score must be a number, a mapping of language to number, or 'card', not {min_score!r}")
        for value in (min_score.values() if isinstance(min_score, dict) else [min_score]):
            if value is not None and not 0 <= value <= 1:
                raise ValueError("min_score must be between 0 and 1")
        self.model, self.min_score = model, min_score
        self.max_chars = max_chars or card.get("settings", {}).get("max_chars", 3000)

    def threshold(self, doc: Document) -> float | None:
        if isinstance(self.min_score, dict):
            return self.min_score.get(str(doc.metadata.get("language")))
        return self.min_score

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        score = positive_probability(load_classifier(self.model), features(doc.text, self.max_chars))
        doc.metadata["quality_score"] = round(score, 4)
        threshold = self.threshold(doc)
        if threshold is not None and score < threshold:
            return False, "low_classifier_score"
        return True
