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
   main text): character 4-gram F1 of our reader (browser decoding) + extraction step
   (``html_extract``, web.yaml's, and ``trafilatura``) + line_cleaner against plain
   ``trafilatura.extract`` on the same bytes.

Chains: ``corpus`` is ``web.yaml``'s steps after extraction, ending with the bundled quality
model ``hplt2`` at its card's per-language min_score (built by ``bench/hplt2_model.py`` from the
dev half's human labels and agent labels; no test-half excerpt reaches it); ``-nl`` leaves out
the rules that need line breaks; ``rules-nl`` is that without the classifier. ``nl+clf-t`` is
rules-nl then a classifier trained here on the dev half's human labels only, with a min_score
per language chosen on the dev half (``dev_thresholds``: out-of-fold scores; the highest that
keeps 88% of the human-kept dev excerpts); ``nl+clf-a-t`` the same trained with the agent labels
of the excerpts no person labelled too (``bench/labels/``), which is how hplt2 is made; ``clf-a``
that classifier alone at 0.5. Only test-half figures are given for chains with a classifier.
``datatrove`` is datatrove's own GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter and
FineWebQualityFilter with their defaults and the excerpt's language (their word tokenizers need
``pip install spacy``: spaCy's blank pipelines run offline; a chain that cannot run says why).
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


def corpus_chain(line_rules: bool = True, classifier: bool = True):
    """web.yaml's steps after extraction; without ``line_rules``, the rules that read line
    breaks (FineWeb's line ratios, Gopher's bullet and ellipsis lines) are left out: the
    excerpts have none. Without ``classifier``, the rules alone (no quality_classifier)."""
    from corpus.filters.classifier import QualityClassifier
    from corpus.filters.heuristics import FineWebQuality, GopherQuality, GopherRepetition
    from corpus.filters.language import LanguageFilter, LanguageID
    from corpus.filters.lines import LineCleaner
    from corpus.filters.spam import AdultSpamFilter

    lines = {} if line_rules else {"max_bullet_lines_ratio": None, "max_ellipsis_lines_ratio": None}
    return [LineCleaner(), LanguageID(backend="heliport", second_opinion=True),
            LanguageFilter(languages=["en", "zh", "ru", "ja"], min_score=0.65),
            AdultSpamFilter(), GopherQuality(min_doc_words=50, **lines), GopherRepetition()] + \
        ([FineWebQuality()] if line_rules else []) + \
        ([QualityClassifier("hplt2", min_score="card")] if classifier else [])


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


AGENT_LABELS = ROOT / "bench" / "labels" / "hplt2-excerpts.agent-labels.jsonl"


def agent_labelled(rows: list[dict]) -> list[dict]:
    """The excerpts no person labelled, with the labels our annotation agents gave them
    (``bench/labels/``: 1,984 excerpts of zh-Hans, ru, en; never a test-half excerpt)."""
    by_id = {r["id"]: r for r in rows}
    out = []
    for line in AGENT_LABELS.open(encoding="utf-8"):
        label = json.loads(line)
        row = by_id[label["id"]]
        if not row.get("labelled"):  # the human-labelled ones were given blind, to measure agreement
            out.append({**row, "keep": label["keep"]})
    return out


def train_dev_classifier(labelled: list[dict], folder: str, extra: list[dict] = (), train_half: str = "dev") -> str:
    """A quality_classifier model trained on the dev half's human labels (and ``extra``
    labelled excerpts) only (`corpus quality train`); ``train_half="test"`` for the swapped fold."""
    import os

    from corpus.filters.classifier import ClassifierConfig, train_classifier

    path = os.path.join(folder, "dev.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in [r for r in labelled if half(r["id"]) == train_half] + list(extra):  # the other half never
            assert not (r.get("labelled") and half(r["id"]) != train_half)
            f.write(json.dumps({"id": r["id"], "text": r["text"], "keep": r["keep"], "lang": r["lang"]}) + "\n")
    train_classifier([path], [], os.path.join(folder, "model"), ClassifierConfig(held_out=0.1), label_key="keep")
    return os.path.join(folder, "model", "model.bin")


def dev_thresholds(labelled: list[dict], folder: str, extra: list[dict] = (), keep_at_least: float = 0.88,
                   folds: int = 5, quantize: dict | None = None, train_half: str = "dev") -> dict[str, float]:
    """A min_score per language, chosen on the dev half only, with out-of-fold classifier scores
    (each dev excerpt scored by a model that did not see its label): the highest score at which
    the rules (corpus-nl) and the classifier together still keep ``keep_at_least`` of the
    human-kept dev excerpts (the 85% target with a margin), or, where the rules alone keep less
    than that, all but 2 points of what they keep. With ``quantize`` (fastText's quantize
    arguments), each fold's model is quantized so, as the model the thresholds are for."""
    import os

    from corpus.filters.classifier import features, load_classifier, positive_probability

    dev = [r for r in labelled if half(r["id"]) == train_half]
    fold = {r["id"]: hashlib.blake2b(r["id"].encode(), digest_size=2).digest()[0] % folds for r in dev}
    scores = {}
    for k in range(folds):
        sub = os.path.join(folder, f"fold{k}")
        os.makedirs(sub, exist_ok=True)
        model = load_classifier(train_dev_classifier([r for r in dev if fold[r["id"]] != k], sub, extra, train_half))
        if quantize:
            model.quantize(**quantize)
        for r in dev:
            if fold[r["id"]] == k:
                scores[r["id"]] = positive_probability(model, features(r["text"]))
    passing = set()
    for lang in LANGS:
        passing |= run_chain(corpus_chain(line_rules=False, classifier=False), [r for r in dev if r["lang"] == lang])[0]
    thresholds = {}
    for lang in LANGS:
        good = [r for r in dev if r["lang"] == lang and r["keep"]]
        rules_keep = sum(r["id"] in passing for r in good) / len(good)
        need = min(keep_at_least, rules_keep - 0.02)
        candidates = sorted({0.0} | {scores[r["id"]] for r in good if r["id"] in passing})
        thresholds[lang] = max(t for t in candidates
                               if sum(r["id"] in passing and scores[r["id"]] >= t for r in good) / len(good) >= need)
    return thresholds


def labels_table():
    import tempfile

    from corpus.filters.classifier import QualityClassifier

    rows = [json.loads(line) for line in (SHARED / "web-quality" / "hplt2-excerpts.jsonl").open()]
    labelled = [r for r in rows if r.get("labelled") and r["lang"] in LANGS]
    agent = agent_labelled(rows)
    model = train_dev_classifier(labelled, tempfile.mkdtemp())
    thresholds = dev_thresholds(labelled, tempfile.mkdtemp())
    model_a = train_dev_classifier(labelled, tempfile.mkdtemp(), agent)
    thresholds_a = dev_thresholds(labelled, tempfile.mkdtemp(), agent)
    from corpus.filters.classifier import BUNDLED, features, load_classifier, positive_probability, roc_auc

    test = [r for r in labelled if half(r["id"]) == "test"]
    for name, values, path in (("dev labels", thresholds, model), ("dev + agent labels", thresholds_a, model_a),
                               ("bundled hplt2", QualityClassifier("hplt2", min_score="card").min_score, str(BUNDLED["hplt2"]))):
        auc = {LANGS[lang]: roc_auc([positive_probability(load_classifier(path), features(r["text"])) for r in test if r["lang"] == lang],
                                    [r["keep"] for r in test if r["lang"] == lang]) for lang in LANGS}
        print(f"classifier, {name}: ROC AUC on the test half", ", ".join(f"{k} {v:.3f}" for k, v in auc.items()),
              "| min_score chosen on the dev half (out-of-fold)", ", ".join(f"{LANGS[k] if k in LANGS else k} {v:.3f}" for k, v in values.items()))
    rules = lambda: corpus_chain(line_rules=False, classifier=False)  # noqa: E731
    chains = {"corpus": lambda lang: corpus_chain(), "corpus-nl": lambda lang: corpus_chain(line_rules=False),
              "rules-nl": lambda lang: rules(),
              "nl+clf-t": lambda lang: rules() + [QualityClassifier(model, min_score=thresholds[lang])],
              "clf-a": lambda lang: [QualityClassifier(model_a, min_score=0.5)],
              "nl+clf-a-t": lambda lang: rules() + [QualityClassifier(model_a, min_score=thresholds_a[lang])],
              "datatrove": datatrove_chain, "dt-nl": lambda lang: datatrove_chain(lang, line_rules=False)}
    print(f"\n{len(labelled)} labelled excerpts; keep% = human-kept kept, drop% = human-dropped dropped")
    print("corpus: web.yaml's steps after extraction, with the bundled quality model hplt2 (min_score: card)")
    print("-nl: the same without the rules that need line breaks (the excerpts have none); rules-nl: no classifier")
    print("nl+clf-t: rules-nl, then a classifier trained on the dev half's human labels, min_score per language "
          "chosen on the dev half; nl+clf-a-t: the same trained with the agent labels too (as hplt2); clf-a: that "
          "classifier alone at 0.5")
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
            for part in ("test",) if name.startswith(("corpus", "clf", "nl+clf")) else ("test", "all"):
                sel = [r for r in labelled if r["lang"] == lang and (part == "all" or half(r["id"]) == part)]
                good = [r for r in sel if r["keep"]]
                bad = [r for r in sel if not r["keep"]]
                keep = sum(r["id"] in kept for r in good) / max(1, len(good))
                drop = sum(r["id"] not in kept for r in bad) / max(1, len(bad))
                print(f"{name:<12}{LANGS[lang]:<6}{part:<6}{len(good):>7}{keep:>8.1%}{len(bad):>10}{drop:>8.1%}{speed:>9,.0f}")
    two_fold(labelled, agent)


def two_fold(labelled: list[dict], agent: list[dict]) -> None:
    """nl+clf-a-t both ways: trained (and its min_score chosen) on one half's human labels plus
    the agent labels, measured on the other half; the dev half without the 32 excerpts the
    agents were shown as examples (``bench/labels/examples-shown.json``). Both halves together
    have three times the test half's human-dropped excerpts."""
    import tempfile

    from corpus.filters.classifier import QualityClassifier

    shown = {i for ids in json.loads((AGENT_LABELS.parent / "examples-shown.json").read_text()).values() for i in ids}
    measured = [r for r in labelled if r["id"] not in shown]
    kept = set()
    for train, other in (("dev", "test"), ("test", "dev")):
        model = train_dev_classifier(labelled, tempfile.mkdtemp(), agent, train_half=train)
        thresholds = dev_thresholds(labelled, tempfile.mkdtemp(), agent, train_half=train)
        for lang in LANGS:
            sel = [r for r in measured if r["lang"] == lang and half(r["id"]) == other]
            steps = corpus_chain(line_rules=False, classifier=False) + [QualityClassifier(model, min_score=thresholds[lang])]
            kept |= run_chain(steps, sel)[0]
    print("\nnl+clf-a-t, two-fold: trained on one half (human + agent labels), measured on the other")
    print(f"{'measured on':<14}{'lang':<6}{'kept n':>7}{'keep%':>8}{'dropped n':>10}{'drop%':>8}")
    for part in ("test", "dev", "both"):
        for lang in LANGS:
            sel = [r for r in measured if r["lang"] == lang and part in ("both", half(r["id"]))]
            good, bad = [r for r in sel if r["keep"]], [r for r in sel if not r["keep"]]
            print(f"{part:<14}{LANGS[lang]:<6}{len(good):>7}{sum(r['id'] in kept for r in good) / len(good):>8.1%}"
                  f"{len(bad):>10}{sum(r['id'] not in kept for r in bad) / len(bad):>8.1%}")


def step_costs() -> None:
    """Documents per second of each of web.yaml's steps after extraction, one core, on all 6,496
    excerpts (every language): each step alone on the same documents, language already set."""
    from datatrove.data import Document

    from corpus.filters.language import LanguageIdentifier

    rows = [json.loads(line) for line in (SHARED / "web-quality" / "hplt2-excerpts.jsonl").open()]
    lid = LanguageIdentifier(None, 10_000, True, "heliport")
    languages = {r["id"]: lid.predict(r["text"]) for r in rows}
    print(f"\nweb.yaml's steps one by one on {len(rows):,} excerpts (one core)")
    for step in corpus_chain(line_rules=True):
        docs = [Document(text=r["text"], id=r["id"], metadata={} if step.name.endswith("language_id") else
                         {"language": languages[r["id"]][0], "language_score": languages[r["id"]][1]}) for r in rows]
        t = time.perf_counter()
        for _ in step.run(iter(docs)):
            pass
        print(f"{step.name:<28}{len(rows) / (time.perf_counter() - t):>10,.0f} docs/s")


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

    from corpus.extract import HtmlExtractor, TrafilaturaExtractor
    from corpus.filters.lines import LineCleaner
    from corpus.readers import FilesReader

    pages = SHARED / "zh-extraction" / "pages"
    gold = {p.stem: p.read_text(encoding="utf-8") for p in (pages / "cleaned").glob("*.txt")}
    rows = []
    for name, extractor in (("html_extract", HtmlExtractor(timeout=30)), ("trafilatura", TrafilaturaExtractor(timeout=30))):
        t = time.perf_counter()
        docs = {d.id[:-5]: d.text for d in LineCleaner().run(extractor.run(FilesReader([str(pages / "original" / "*.html")]).run()))}
        rows.append((f"corpus: files_reader + {name} + line_cleaner", docs, time.perf_counter() - t))
    t = time.perf_counter()
    plain = {p.stem: trafilatura.extract(p.read_bytes()) or "" for p in (pages / "original").glob("*.html")}
    rows.append(("plain trafilatura.extract(bytes)", plain, time.perf_counter() - t))
    print(f"\nChinese main text, {len(gold)} pages (character 4-gram F1 against hand-extracted text)")
    print(f"{'tool':<50}{'mean F1':>8}{'median':>8}{'pages':>7}{'seconds':>9}")
    for name, docs, seconds in rows:
        scores = [f1(docs.get(k, ""), g) for k, g in gold.items()]
        print(f"{name:<50}{statistics.mean(scores):>8.3f}{statistics.median(scores):>8.3f}"
              f"{sum(bool(v) for v in docs.values()):>7}{seconds:>9.1f}")

if __name__ == "__main__":
    require_shared()
    labels_table()
    chinese_extraction()
    step_costs()
