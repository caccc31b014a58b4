"""The trained quality classifier: `corpus quality train` and the quality_classifier step."""

from __future__ import annotations

import json
import subprocess

import pytest
from datatrove.data import Document

from corpus.filters.classifier import ClassifierConfig, QualityClassifier, features, held_out, roc_auc, train_classifier
from tests.conftest import CORPUS, funnel_of


def test_roc_auc_counts_ties_half():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.2, 0.3], [True, True]) is None


def test_features_split_chinese_into_characters_and_keep_one_line():
    assert features("北京是中国的首都。\nSee 2024!").split() == list("北京是中国的首都。") + ["see", "0000", "!"]
    assert "\n" not in features("a\r\nb\u2028c")


def test_web_quality_half_scores_the_other_half_with_the_cards_auc(tmp_path, shared):
    """Trained on half of the human-labelled excerpts, the model scores the other half (never
    seen) with the ROC AUC its card reports, and separates kept from dropped text in zh, ru, en."""
    data = shared("web-quality", "hplt2-excerpts.jsonl")
    out = tmp_path / "model"
    proc = subprocess.run(CORPUS + ["quality", "train", "--positive", str(data), "--label-key", "keep",
                                    "--held-out", "0.5", "--output", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ROC AUC" in proc.stdout
    card = json.loads((out / "card.json").read_text())
    assert card["documents"]["held_out"]["negative"] > 20 and card["documents"]["train"]["negative"] > 20
    assert set(card["held_out_by_language"]) == {"zho_Hans", "rus_Cyrl", "eng_Latn"}

    rows = [json.loads(line) for line in data.open(encoding="utf-8")]
    test = [r for r in rows if r["labelled"] and held_out(r["id"], 0.5)]
    step = QualityClassifier(str(out / "model.bin"))
    docs = [Document(text=r["text"], id=r["id"]) for r in test]
    for doc in docs:
        step.filter(doc)
    scores = [d.metadata["quality_score"] for d in docs]
    auc = roc_auc(scores, [r["keep"] for r in test])
    assert auc == pytest.approx(card["held_out"]["roc_auc"], abs=2e-3)  # scores are rounded to 4 places
    assert auc > 0.7
    assert card["held_out_by_language"]["zho_Hans"]["roc_auc"] > 0.8


def test_positive_and_negative_inputs_and_min_score(tmp_path):
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "bad.jsonl"
    articles = ["The committee published its annual report on water quality in the region today.",
                "研究人员在实验室里发现了一种新的蛋白质，这项成果发表在科学期刊上。",
                "Researchers described how the bridge was rebuilt after the flood of last spring."]
    spam = ["casino bonus free spins casino jackpot slots casino bonus win big",
            "免费 看片 在线 视频 高清 无码 免费 看片 在线 视频",
            "cheap viagra cheap pills buy now cheap viagra discount"]
    good.write_text("".join(json.dumps({"id": f"g{i}", "text": articles[i % 3] + f" ({i})"}) + "\n" for i in range(120)))
    bad.write_text("".join(json.dumps({"id": f"b{i}", "text": spam[i % 3] + f" ({i})"}) + "\n" for i in range(120)))
    card = train_classifier([str(good)], [str(bad)], tmp_path / "m", ClassifierConfig(held_out=0.25))
    assert card["held_out"]["roc_auc"] == 1.0
    step = QualityClassifier(str(tmp_path / "m" / "model.bin"), min_score=0.5)
    docs = [Document(text="研究人员发表了关于蛋白质的新成果。", id="a"), Document(text="免费 看片 高清 无码 免费 看片", id="b")]
    kept = list(step.run(iter(docs)))
    assert [d.id for d in kept] == ["a"]
    assert funnel_of(step).dropped == {"low_classifier_score": 1}


def test_bad_inputs_are_clear_errors(tmp_path):
    one_class = tmp_path / "one.jsonl"
    one_class.write_text("".join(json.dumps({"id": str(i), "text": "good text", "keep": True}) + "\n" for i in range(20)))
    proc = subprocess.run(CORPUS + ["quality", "train", "--positive", str(one_class), "--label-key", "keep",
                                    "--output", str(tmp_path / "m")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no negative documents" in proc.stderr
    proc = subprocess.run(CORPUS + ["quality", "train", "--positive", str(one_class), "--output", str(tmp_path / "m")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "give negative documents" in proc.stderr
    with pytest.raises(FileNotFoundError, match="corpus quality train"):
        QualityClassifier(str(tmp_path / "missing.bin"))
