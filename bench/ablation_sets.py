"""Inputs for `corpus ablate` on pipelines/ablation.yaml's run, kept apart from what was tuned on.

- ``data/ablation/eval-dev.jsonl`` and ``eval-test.jsonl``: the HPLT v2 excerpts people labelled
  "keep", in zh, ru and en (metadata ``language``), split by ``bench.curation.half`` into the dev
  half (which the rules and the bundled ``hplt2`` model were developed on) and the test half, which
  nothing was tuned on. Report figures on the test half only.
- ``data/ablation/spoiled/docs.jsonl``: the instrument check of issue #20: the run's raw documents
  with a fifth of them (seeded) replaced by pages its ``adult_spam_filter`` dropped as SEO keyword
  lists, bad words or gambling (drawn with replacement: there are fewer of them than a fifth).
  An ablation that cannot tell raw from this cannot see quality.

    python bench/ablation_sets.py [RUN_DIR]        # default runs/ablation
    corpus ablate runs/ablation --eval data/ablation/eval-dev.jsonl --tokens 600000 --seeds 3 \\
        --arm spoiled=data/ablation/spoiled
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.curation import half  # noqa: E402
from corpus.core.rundir import RunDir  # noqa: E402
from corpus.readers import documents  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXCERPTS = ROOT.parent / "shared" / "data" / "web-quality" / "hplt2-excerpts.jsonl"
LANGS = {"zho_Hans": "zh", "rus_Cyrl": "ru", "eng_Latn": "en"}
SPAM_REASONS = ("seo_keyword_list", "bad_words", "gambling")


def write_jsonl(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return len(rows)


def main(run: str = "runs/ablation", out: str = "data/ablation", share: float = 0.2, seed: int = 0) -> None:
    out_dir = ROOT / out
    rows = [json.loads(line) for line in EXCERPTS.open(encoding="utf-8")]
    for name in ("dev", "test"):
        kept = [{"id": r["id"], "text": r["text"], "metadata": {"language": LANGS[r["lang"]]}} for r in rows
                if r.get("keep") is True and r["lang"] in LANGS and half(r["id"]) == name]
        n = write_jsonl(out_dir / f"eval-{name}.jsonl", kept)
        by = {lang: sum(r["metadata"]["language"] == lang for r in kept) for lang in LANGS.values()}
        print(f"eval-{name}.jsonl: {n} human-kept excerpts {by}")

    rd = RunDir(ROOT / run)
    raw = [{"id": d.id, "text": d.text} for d in documents([str(rd.raw)])]
    steps = json.loads(rd.summary_file.read_text())["steps"]
    index = next(k for k, s in enumerate(steps) if s["step"] == "adult_spam_filter")  # its place in the YAML
    spam = [{"id": d.id, "text": d.text} for d in documents([str(rd.removed_by(index, "adult_spam_filter"))])
            if d.metadata.get("filter_reason") in SPAM_REASONS]
    if not spam:
        raise SystemExit(f"{run}: no pages dropped as {SPAM_REASONS}; run it with save_removed: true")
    rng = random.Random(seed)
    replaced = set(rng.sample(range(len(raw)), round(share * len(raw))))
    spoiled = [dict(rng.choice(spam), id=f"spam-{i}") if i in replaced else r for i, r in enumerate(raw)]
    n = write_jsonl(out_dir / "spoiled" / "docs.jsonl", spoiled)
    print(f"spoiled/docs.jsonl: {n} documents, {len(replaced)} of them replaced by {len(spam)} distinct spam pages")


if __name__ == "__main__":
    main(*sys.argv[1:2])
