"""Language identification on sentences of 75 languages: accuracy per language, macro accuracy
and sentences per second on one core, for our language_id with each backend (lid.176 and
heliport, alone and with lingua's second_opinion) and, side by side, lingua alone.

    python bench/langid.py [--split test|dev|all]     # heliport, lingua: pip install -e '.[langid]'

The sentences come from ``../shared/data/langid-udhr`` (the Universal Declaration of Human
Rights): the 75 languages that lingua covers (``zlm-Latn`` is Malay, ``als`` Albanian), in
their standard written form (versions with numbered codes, which are dialects, and the rare
scripts vi-Hani, az-Cyrl, bs-Cyrl, zlm-Arab are left out), split at sentence ends, at least 20
characters. Even paragraphs form the ``dev`` half, odd ones the ``test`` half: tune on dev,
report on test. Norwegian Bokmål is ``no`` in lid.176 and ``nb`` here.
"""

from __future__ import annotations

import argparse
import collections
import csv
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import SHARED, require_shared  # noqa: E402

LANGUAGES = ("af ar az be bg bn bs ca cs cy da de el en eo es et eu fa fi fr ga gu he hi hr hu hy id is it ja ka "
             "kk ko la lg lt lv mi mk mn mr ms nb nl nn pa pl pt ro ru sk sl sn so sq sr st sv sw ta te th tl tn tr "
             "ts uk ur vi xh yo zh zu").split()
EXTRA = {"zlm-Latn": "ms", "als": "sq"}
RARE_SCRIPTS = {"bs-Cyrl", "zlm-Arab", "vi-Hani", "az-Cyrl"}
ALIASES = {"no": "nb"}
HANS: set[str] = set()  # the simplified-Chinese sentences (cmn_hans), for their own column


def sentences(split: str) -> list[tuple[str, str]]:
    """(language, sentence) pairs of one half (or both)."""
    out = []
    with (SHARED / "langid-udhr" / "udhr_paragraphs.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            tag = row["bcp47"]
            lang = EXTRA.get(tag) or (tag.split("-")[0] if tag.split("-")[0] in LANGUAGES else None)
            if lang is None or tag in RARE_SCRIPTS or row["code"].isdigit():
                continue
            if lang == "zh" and row["code"] not in ("cmn_hans", "cmn_hant"):
                continue  # the others are the same text in regional variants
            half = "dev" if int(row["para_idx"]) % 2 == 0 else "test"
            if split not in (half, "all"):
                continue
            for sentence in re.split(r"(?<=[.!?।。！？;])\s*", row["text"]):
                if len(sentence.strip()) >= 20:
                    out.append((lang, sentence.strip()))
                    if row["code"] == "cmn_hans":
                        HANS.add(sentence.strip())
    return out


def ours(texts: list[str], second_opinion: bool = False, backend: str = "lid176") -> list[str]:
    from corpus.filters.language import LanguageIdentifier

    lid = LanguageIdentifier(None, 10_000, second_opinion, backend)
    return [lid.predict(t)[0] for t in texts]


def lingua(texts: list[str]) -> list[str]:
    from lingua import LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()
    found = [detector.detect_language_of(t) for t in texts]
    return [f.iso_code_639_1.name.lower() if f else "" for f in found]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", choices=["dev", "test", "all"])
    args = ap.parse_args()
    data = sentences(args.split)
    counts = collections.Counter(lang for lang, _ in data)
    print(f"{len(data)} sentences ({args.split}), {len(counts)} languages, {min(counts.values())}-{max(counts.values())} each")
    texts = [t for _, t in data]
    simplified = [i for i, (lang, t) in enumerate(data) if lang == "zh" and t in HANS]
    for name, fn in (("language_id lid176", ours), ("  + second_opinion", lambda t: ours(t, True)),
                     ("language_id heliport", lambda t: ours(t, backend="heliport")),
                     ("  + second_opinion", lambda t: ours(t, True, "heliport")),
                     ("lingua (high accuracy)", lingua)):
        try:
            fn(texts[:50])  # load models outside the timing
            t = time.perf_counter()
            predicted = fn(texts)
            seconds = time.perf_counter() - t
        except ImportError as e:
            print(f"{name}: not installed ({e})")
            continue
        right = collections.defaultdict(list)
        for (lang, _), p in zip(data, predicted):
            right[lang].append(ALIASES.get(p, p) == lang)
        per = {lang: sum(v) / len(v) for lang, v in right.items()}
        worst = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: kv[1])[:10])
        hans = sum(predicted[i] == "zh" for i in simplified) / len(simplified)
        print(f"{name:<24} macro {statistics.mean(per.values()):.3f}  zh {per['zh']:.3f}  zh-Hans {hans:.3f}  "
              f"{len(texts) / seconds:,.0f} sentences/s  worst: {worst}")


if __name__ == "__main__":
    require_shared()
    main()
