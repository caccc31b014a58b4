"""What each step of a run dropped, per language of the source, with samples to read.

Issue #20 asks that no language a recipe keeps loses most of its text to a rule that misreads
it, labelled or not. This prints, for a run made with ``save_removed: true`` on the HPLT v2
excerpts (``pipelines/ablation.yaml``), the share of each source language's excerpts that each
step dropped and why, the share each language keeps in the end, and (with ``--samples K``) K
dropped excerpts per step, reason and language, drawn at random (seeded), for a person to read.

    python bench/drops_by_language.py [RUN_DIR] [--samples 3]      # default runs/ablation
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import require_shared  # noqa: E402
from corpus.core.rundir import RunDir  # noqa: E402
from corpus.readers import documents  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default="runs/ablation")
    ap.add_argument("--samples", type=int, default=0, help="dropped excerpts shown per step, reason and language")
    ap.add_argument("--chars", type=int, default=200, help="characters shown of each")
    args = ap.parse_args()
    source = require_shared() / "web-quality" / "hplt2-excerpts.jsonl"
    lang_of = {r["id"]: r["lang"] for r in map(json.loads, source.open(encoding="utf-8"))}
    totals = Counter(lang_of.values())
    langs = sorted(totals)
    rd = RunDir(ROOT / args.run if not Path(args.run).is_absolute() else args.run)
    if not rd.removed.exists():
        sys.exit(f"{rd.root}: no removed/ folder; run the pipeline with save_removed: true")
    counts: Counter = Counter()
    dropped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for folder in sorted(p for p in rd.removed.iterdir() if p.is_dir()):
        step = folder.name.split("-", 1)[1]
        for doc in documents([str(folder)]):
            reason = doc.metadata.get("filter_reason") or "?"
            if reason == "lines_removed" or not doc.text.strip():
                continue  # lines cut from a document the step kept
            lang = lang_of.get(doc.id, "?")
            counts[(step, reason, lang)] += 1
            dropped[(step, reason, lang)].append(doc.text)
    kept = Counter(lang_of.get(d.id, "?") for d in documents([str(rd.curated_docs())]))
    width = max(len(f"{s} {r}") for s, r, _ in counts) if counts else 20
    print(f"{'share of each language dropped':<{width}}  " + "  ".join(f"{lang:>8}" for lang in langs))
    steps = list(dict.fromkeys(s for s, _, _ in counts))  # in the run's order (its removed/ folders)
    for step, reason in sorted({(s, r) for s, r, _ in counts}, key=lambda sr: (steps.index(sr[0]), sr[1])):
        print(f"{step + ' ' + reason:<{width}}  "
              + "  ".join(f"{counts[(step, reason, lang)] / totals[lang]:>8.1%}" for lang in langs))
    print(f"{'kept in the end':<{width}}  " + "  ".join(f"{kept[lang] / totals[lang]:>8.1%}" for lang in langs))
    rng = random.Random(0)
    for key in sorted(dropped) if args.samples else []:
        texts = dropped[key]
        print(f"\n== {' / '.join(key)}: {len(texts)} dropped")
        for text in rng.sample(texts, min(args.samples, len(texts))):
            print("  - " + " ".join(text.split())[:args.chars])


if __name__ == "__main__":
    main()
