"""Builds the bundled quality model ``hplt2`` (``filters/data/quality/hplt2/``): run by hand.

    python bench/hplt2_model.py        # needs ../shared/data/web-quality; about a minute

The model is the one ``bench/curation.py`` measures: fastText (``corpus quality train``'s
settings) trained on the web-quality excerpts of zh-Hans, ru and en that are not in the test
half: the dev half's human labels and the agent labels of the excerpts no person labelled
(``bench/labels/``). Its per-language ``min_score`` (``quality_classifier: {min_score: card}``)
is chosen on the dev half out of fold (``bench.curation.dev_thresholds``, with the fold models quantized as
this one). It is quantized (fastText's product quantization, 50,000 most useful words and
n-grams kept) to 1.4 MB; its card
gives ROC AUC on the test half's human labels, which no model saw.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import SHARED, require_shared  # noqa: E402
from bench.curation import LANGS, agent_labelled, dev_thresholds, half, train_dev_classifier  # noqa: E402

OUT = ROOT / "filters" / "data" / "quality" / "hplt2"
QUANTIZE = {"dsub": 2, "qnorm": True, "cutoff": 50_000, "retrain": False}


def main() -> None:
    import fasttext

    from corpus.core.io import atomic_path, write_json
    from corpus.filters.classifier import features, metrics, positive_probability

    rows = [json.loads(line) for line in (SHARED / "web-quality" / "hplt2-excerpts.jsonl").open(encoding="utf-8")]
    labelled = [r for r in rows if r.get("labelled") and r["lang"] in LANGS]
    agent = agent_labelled(rows)
    work = tempfile.mkdtemp()
    try:
        model_bin = train_dev_classifier(labelled, work, agent)
        card = json.loads(Path(model_bin).with_name("card.json").read_text())
        thresholds = dev_thresholds(labelled, work, agent, quantize=QUANTIZE)  # chosen for the quantized model
        model = fasttext.load_model(model_bin)
        model.quantize(**QUANTIZE)
        OUT.mkdir(parents=True, exist_ok=True)
        with atomic_path(OUT / "model.ftz") as tmp:
            model.save_model(str(tmp))
        test = [r for r in labelled if half(r["id"]) == "test"]
        by_language = {}
        for lang, code in LANGS.items():
            sel = [r for r in test if r["lang"] == lang]
            by_language[code] = metrics([positive_probability(model, features(r["text"])) for r in sel], [r["keep"] for r in sel])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    card.update({
        "model": "model.ftz", "name": "hplt2",
        "about": "keep/drop for web text in zh (Hans), ru and en: porn, 'unnatural' (SEO keyword lists, "
                 "boilerplate, machine-made text) and wrong-language pages score low. Built by bench/hplt2_model.py.",
        "inputs": {"texts": "HPLT v2 excerpts, ../shared/data/web-quality/hplt2-excerpts.jsonl (see its README)",
                   "labels": {"human (HPLT v2 inspection, MIT), dev half": sum(half(r["id"]) == "dev" for r in labelled),
                              "agent (bench/labels/)": len(agent)}},
        "min_score_by_language": {LANGS[k]: round(v, 4) for k, v in thresholds.items()},
        "min_score_chosen": "on the dev half, out of fold: the highest score at which the rules and the classifier "
                            "keep 88% of the human-kept excerpts (bench/curation.py dev_thresholds)",
        "quantized": QUANTIZE,
        "test_half_human_labels": by_language,
        "model_bytes": (OUT / "model.ftz").stat().st_size,
    })
    for key in ("held_out", "held_out_by_language"):  # a 10% split of the training data: the test half says more
        card.pop(key)
    write_json(OUT / "card.json", card)
    print(json.dumps({k: card[k] for k in ("min_score_by_language", "test_half_human_labels", "model_bytes")}, indent=1))


if __name__ == "__main__":
    require_shared()
    main()
