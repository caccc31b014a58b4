"""Curation quality per language, side by side with datatrove's FineWeb filters, in one run.

    python bench/curation.py            # needs ../shared/data (web-quality, zh-extraction)

1. **Human labels** (``web-quality/hplt2-excerpts.jsonl``: zh-Hans, ru, en excerpts that people
   marked keep or drop: porn, "unnatural" SEO/boilerplate text, wrong language). For each
   filter chain and language: the share of human-kept excerpts it keeps and of human-dropped
   ones it drops. The labelled excerpts are split in two halves by a hash of their id; figures
   are given for the ``test`` half (nothing was tuned on it) and for both. The excerpts are
   1,000 characters with line breaks flattened, so line-based rules (C4's, FineWeb's line
   ratios) are judged on one long line, as the data's README warns.
2. **Chinese main text** (``zh-extraction/pages``: saved pages, mostly GBK, with hand-extracted
   main text): character 4-gram F1 of our reader (browser decoding) + trafilatura step +
   line_cleaner against plain ``trafilatura.extract`` on the same bytes.

Chains: ``corpus`` is ``web.yaml``'s steps after extraction; ``datatrove`` is datatrove's own
GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter and FineWebQualityFilter with their
defaults and the excerpt's language (their word tokenizers need ``pip install spacy``: spaCy's
blank pipelines run offline; a chain that cannot run says why). ``classifier`` is the
``quality_classifier`` step with a model trained (``corpus quality train``) on the dev half's
labels only, so only its test-half figures are given; ``nl+clf`` runs it after ``corpus-nl``;
``nl+clf-t`` does so with a min_score per language chosen on the dev half (out-of-fold scores,
the score that keeps 95% of the human-kept dev excerpts the rules pass).
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import SHARED, require_shared  # noqa: E402

LANGS = {"zho_Hans": "zh", "rus_Cyrl": "ru", "eng_Latn": "en"}


def half(doc_id: str) -> str:
    return "test" if hashlib.blake2b(doc_id.encode(), digest_size=1).digest()[0] % 2 else "dev"


def corpus_chain(line_rules: bool = True):
    """web.yaml's steps after extraction; without ``line_rules``, the rules that read line
    breaks (FineWeb's line ratios, Gopher's bullet and ellipsis lines) are left out: the
    excerpts have none."""
    from corpus.filters.heuristics import FineWebQuality, GopherQuality, GopherRepetition
    from corpus.filters.language import LanguageFilter, LanguageID
    from corpus.filters.lines import LineCleaner
    from corpus.filters.spam import AdultSpamFilter

    lines = {} if line_rules else {"max_bullet_lines_ratio": None, "max_ellipsis_lines_ratio": None}
    return [LineCleaner(), LanguageID(backend="heliport", second_opinion=True), LanguageFilter(languages=["en", "zh", "ru", "ja"], min_score=0.65),
            AdultSpamFilter(), GopherQuality(min_doc_words=50, **lines), GopherRepetition()] + \
        ([FineWebQuality()] if line_rules else [])


DATATROVE_LANGUAGE = {"zho_Hans": "zho", "rus_Cyrl": "rus", "eng_Latn": "eng"}


def datatrove_chain(lang: str = "eng_Latn", line_rules: bool = True):
    """datatrove's FineWeb filters with their defaults, told the language (their word
    tokenizers: spaCy's blank pipelines, which run offline once spaCy is installed)."""
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter

    language = DATATROVE_LANGUAGE[lang]
    if not line_rules:
        return [GopherQualityFilter(language=language, max_bullet_lines_ratio=None, max_ellipsis_lines_ratio=None),
                GopherRepetitionFilter(language=language)]
    return [GopherQualityFilter(language=language), GopherRepetitionFilter(language=language),
            C4QualityFilter(language=language), FineWebQualityFilter(language=language)]


def run_chain(steps, docs):
    """Ids that survive the chain, and documents per second."""
    from datatrove.data import Document

    data = iter([Document(text=d["text"], id=d["id"], metadata={}) for d in docs])
    t = time.perf_counter()
    for step in steps:
        data = step.run(data)
    kept = {d.id for d in data}
    return kept, len(docs) / max(1e-9, time.perf_counter() - t)


def train_dev_classifier(labelled: list[dict], folder: str) -> str:
    """A quality_classifier model trained on the dev half's labels only (`corpus quality train`)."""
    import os

    from corpus.filters.classifier import ClassifierConfig, train_classifier

    path = os.path.join(folder, "dev.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in labelled:
            if half(r["id"]) == "dev":  # the test half never reaches a model
                f.write(json.dumps({"id": r["id"], "text": r["text"], "keep": r["keep"], "lang": r["lang"]}) + "\n")
    train_classifier([path], [], os.path.join(folder, "model"), ClassifierConfig(held_out=0.1), label_key="keep")
    return os.path.join(folder, "model", "model.bin")


def dev_thresholds(labelled: list[dict], folder: str, keep_share: float = 0.95, folds: int = 5) -> dict[str, float]:
    """A min_score per language, chosen on the dev half only: out-of-fold classifier scores of
    the human-kept dev excerpts that pass the rules (corpus-nl), and the score that keeps
    ``keep_share`` of them."""
    import os

    from corpus.filters.classifier import features, load_classifier, positive_probability

    dev = [r for r in labelled if half(r["id"]) == "dev"]
    fold = {r["id"]: hashlib.blake2b(r["id"].encode(), digest_size=2).digest()[0] % folds for r in dev}
    scores = {}
    for k in range(folds):
        sub = os.path.join(folder, f"fold{k}")
        os.makedirs(sub, exist_ok=True)
        model = train_dev_classifier([r for r in dev if fold[r["id"]] != k], sub)
        for r in dev:
            if fold[r["id"]] == k:
                scores[r["id"]] = positive_probability(load_classifier(model), features(r["text"]))
    passing = set()
    for lang in LANGS:
        passing |= run_chain(corpus_chain(line_rules=False), [r for r in dev if r["lang"] == lang])[0]
    thresholds = {}
    for lang in LANGS:
        good = sorted(scores[r["id"]] for r in dev if r["lang"] == lang and r["keep"] and r["id"] in passing)
        thresholds[lang] = good[int((1 - keep_share) * len(good))] if good else 0.0
    return thresholds


def labels_table():
    import tempfile

    from corpus.filters.classifier import QualityClassifier

    rows = [json.loads(line) for line in (SHARED / "web-quality" / "hplt2-excerpts.jsonl").open()]
    labelled = [r for r in rows if r.get("labelled") and r["lang"] in LANGS]
    model = train_dev_classifier(labelled, tempfile.mkdtemp())
    thresholds = dev_thresholds(labelled, tempfile.mkdtemp())
    print("per-language min_score chosen on the dev half (out-of-fold):",
          ", ".join(f"{LANGS[k]} {v:.3f}" for k, v in thresholds.items()))
    chains = {"corpus": lambda lang: corpus_chain(), "corpus-nl": lambda lang: corpus_chain(line_rules=False),
              "classifier": lambda lang: [QualityClassifier(model, min_score=0.5)],
              "nl+clf": lambda lang: corpus_chain(line_rules=False) + [QualityClassifier(model, min_score=0.5)],
              "nl+clf-t": lambda lang: corpus_chain(line_rules=False) + [QualityClassifier(model, min_score=thresholds[lang])],
              "datatrove": datatrove_chain, "dt-nl": lambda lang: datatrove_chain(lang, line_rules=False)}
    print(f"\n{len(labelled)} labelled excerpts; keep% = human-kept kept, drop% = human-dropped dropped")
    print("-nl: the same without the rules that need line breaks (the excerpts have none)")
    print("classifier: quality_classifier (min_score 0.5) trained on the dev half's labels: test half only")
    print("nl+clf-t: corpus-nl, then the classifier with a min_score per language chosen on the dev half")
    print(f"{'chain':<12}{'lang':<6}{'half':<6}{'kept n':>7}{'keep%':>8}{'dropped n':>10}{'drop%':>8}{'docs/s':>9}")
    for name, make in chains.items():
        kept, docs, seconds = set(), 0, 0.0
        try:
            for lang in LANGS:  # each language through its own chain, as a run with language_id would
                sel = [r for r in labelled if r["lang"] == lang]
                ids, speed = run_chain(make(lang), sel)
                kept |= ids
                docs, seconds = docs + len(sel), seconds + len(sel) / speed
        except Exception as e:  # noqa: BLE001  (say exactly why it cannot run)
            print(f"{name}: cannot run here: {type(e).__name__}: {e}")
            continue
        speed = docs / seconds
        for lang in LANGS:
            for part in ("test",) if name.startswith(("classifier", "nl+clf")) else ("test", "all"):
                sel = [r for r in labelled if r["lang"] == lang and (part == "all" or half(r["id"]) == part)]
                good = [r for r in sel if r["keep"]]
                bad = [r for r in sel if not r["keep"]]
                keep = sum(r["id"] in kept for r in good) / max(1, len(good))
                drop = sum(r["id"] not in kept for r in bad) / max(1, len(bad))
                print(f"{name:<12}{LANGS[lang]:<6}{part:<6}{len(good):>7}{keep:>8.1%}{len(bad):>10}{drop:>8.1%}{speed:>9,.0f}")


def shingles(text: str, n: int = 4) -> set[str]:
    text = re.sub(r"\s+", "", text or "")
    return {text[i : i + n] for i in range(max(0, len(text) - n + 1))}


def f1(pred: str, gold: str) -> float:
    p, g = shingles(pred), shingles(gold)
    inter = len(p & g)
    if not inter:
        return 0.0
    return 2 * inter / (len(p) + len(g))


def chinese_extraction():
    import trafilatura

    from corpus.extract import TrafilaturaExtractor
    from corpus.filters.lines import LineCleaner
    from corpus.readers import FilesReader

    pages = SHARED / "zh-extraction" / "pages"
    gold = {p.stem: p.read_text(encoding="utf-8") for p in (pages / "cleaned").glob("*.txt")}
    t = time.perf_counter()
    docs = {d.id[:-5]: d.text for d in LineCleaner().run(TrafilaturaExtractor(timeout=30).run(
        FilesReader([str(pages / "original" / "*.html")]).run()))}
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    plain = {p.stem: trafilatura.extract(p.read_bytes()) or "" for p in (pages / "original").glob("*.html")}
    plain_s = time.perf_counter() - t
    ours_f1 = [f1(docs.get(k, ""), g) for k, g in gold.items()]
    plain_f1 = [f1(plain.get(k, ""), g) for k, g in gold.items()]
    print(f"\nChinese main text, {len(gold)} pages (character 4-gram F1 against hand-extracted text)")
    print(f"{'tool':<46}{'mean F1':>8}{'median':>8}{'pages':>7}{'seconds':>9}")
    print(f"{'corpus: files_reader + trafilatura + line_cleaner':<46}{statistics.mean(ours_f1):>8.3f}"
          f"{statistics.median(ours_f1):>8.3f}{len(docs):>7}{ours_s:>9.1f}")
    print(f"{'plain trafilatura.extract(bytes)':<46}{statistics.mean(plain_f1):>8.3f}"
          f"{statistics.median(plain_f1):>8.3f}{sum(bool(v) for v in plain.values()):>7}{plain_s:>9.1f}")


if __name__ == "__main__":
    require_shared()
    labels_table()
    chinese_extraction()
