"""`corpus ablate`: the same GPT on a run's raw and curated documents, scored on trusted text."""

from __future__ import annotations

import gzip
import json
import subprocess


from corpus.ablate import verdict, write_training_docs
from tests.conftest import CORPUS, ROOT, shared_path

TINY = ["--set", "n_layer=1", "--set", "n_head=2", "--set", "n_embd=32", "--set", "block_size=32",
        "--set", "batch_size=8", "--set", "device=cpu"]


def test_ablate_trains_both_arms_on_the_same_budget_and_resumes(web_run):
    faq = shared_path("sites", "python-docs", "_sources", "faq")
    eval_glob = str(faq / "[dg]*.rst.txt")  # design.rst.txt, general.rst.txt, gui.rst.txt
    args = CORPUS + ["ablate", str(web_run), "--eval", eval_glob, "--tokens", "3000", "--seeds", "2"] + TINY
    first = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads((web_run / "ablation" / "ablation.json").read_text())
    raw, curated = result["arms"]["raw"], result["arms"]["curated"]
    assert raw["documents"] > curated["documents"] > 0  # raw: every extracted page; curated: what the run kept
    assert raw["tokens_trained"] == curated["tokens_trained"] >= 3000
    assert len(raw["bpb"]) == len(curated["bpb"]) == 2 and all(0 < x < 20 for x in raw["bpb"] + curated["bpb"])
    assert raw["bpb"][0] != raw["bpb"][1]  # different seeds, different models
    assert result["verdict"].startswith("curated ") and "seed noise" in result["verdict"]
    assert "raw" in first.stdout and "curated" in first.stdout and "bits/byte" in first.stdout
    # the terminal gets a line a model; datatrove's stats tables and every training step go to the log
    assert "Stats" not in first.stderr and "train: step" not in first.stderr
    assert "ablate: raw, seed 1, on " in first.stderr and "trained in" in first.stderr
    log = (web_run / "ablation" / "console.log").read_text(encoding="utf-8")
    assert "train: step" in log and "Stats" in log
    page = (web_run / "report.html").read_text(encoding="utf-8")
    assert "Ablation: raw vs curated" in page and "curated better by (bits/byte)" in page  # the paired differences
    # run again: every seed is done, nothing is trained, the figures are the same
    again = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and "ablate: training" not in again.stderr
    assert json.loads((web_run / "ablation" / "ablation.json").read_text())["arms"] == result["arms"]


def test_a_run_without_raw_documents_says_how_to_keep_them(tmp_path):
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer.model").write_bytes(b"x")
    proc = subprocess.run(CORPUS + ["ablate", str(tmp_path), "--eval", "x.txt", "--tokens", "10"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "save_raw: true" in proc.stderr


def test_evaluation_text_never_enters_a_training_set(tmp_path):
    """Left out of training: an evaluation document as is (spaces aside), a copy a step edited
    (line_cleaner cut the excerpt's '..........' line), and a near-duplicate (Chinese, a sentence
    added); kept: other documents, even of the same site and language."""
    from corpus.ablate import Exclusion

    rows = [json.loads(line) for line in open(shared_path("web-quality", "hplt2-excerpts.jsonl"), encoding="utf-8")]
    ru = next(r["text"] for r in rows if r["lang"] == "rus_Cyrl" and "..........\n" in r["text"])
    zh, zh_other = [r["text"] for r in rows if r["lang"] == "zho_Hans"][:2]
    en_other = next(r["text"] for r in rows if r["lang"] == "eng_Latn")
    src = tmp_path / "src"
    src.mkdir()
    docs = {"same": "The eval   text.", "edited": ru.replace("..........\n", ""), "near": zh + "欢迎转载。",
            "other-zh": zh_other, "other-en": en_other, "other": "Other text."}
    (src / "a.jsonl").write_text("".join(json.dumps({"id": k, "text": v}, ensure_ascii=False) + "\n"
                                         for k, v in docs.items()), encoding="utf-8")
    kept, left_out = write_training_docs(src, tmp_path / "out", Exclusion(["The eval text.", ru, zh]))
    assert (kept, left_out) == (3, 3)
    written = {json.loads(line)["id"] for line in (tmp_path / "out" / "docs.jsonl").read_text().splitlines()}
    assert written == {"other-zh", "other-en", "other"}


def test_verdict_weighs_the_difference_against_seed_noise():
    words, diff, se = verdict([2.0, 2.1, 2.2], [1.5, 1.6, 1.7])
    assert "curated better than raw by 0.5000" in words and "larger than seed noise" in words
    words, _, _ = verdict([2.0, 2.4, 1.6], [1.9, 2.3, 1.7])
    assert "smaller than seed noise" in words
    assert "no estimate of seed noise" in verdict([2.0], [1.9])[0]
    words, _, _ = verdict([2.0, 2.4, 1.6], [2.0005, 2.3, 1.7])  # too small a difference to count seeds for
    assert "over 1,000 seeds per arm" in words


def test_ablate_scores_several_sets_per_language_and_matches_the_language_mix(web_run, tmp_path):
    """Two --eval sets, the first with documents of three languages (HPLT excerpts, metadata
    `lang`): every set and every language is scored for both arms, each with its verdict; with
    --match-languages the raw arm's per-language token shares are the curated arm's within 1%, and
    so are those of an extra arm (--arm)."""
    from corpus.tokenizer.sp import Tokenizer

    rows = [json.loads(line) for line in open(shared_path("web-quality", "hplt2-excerpts.jsonl"), encoding="utf-8")]
    picked = [r for lang in ("eng_Latn", "rus_Cyrl", "zho_Hans") for r in [x for x in rows if x["lang"] == lang][-15:]]
    (tmp_path / "hplt.jsonl").write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "lang": r["lang"]},
                                                            ensure_ascii=False) + "\n" for r in picked), encoding="utf-8")
    faq = str(shared_path("sites", "python-docs", "_sources", "faq") / "[dg]*.rst.txt")
    args = CORPUS + ["ablate", str(web_run), "--eval", str(tmp_path / "hplt.jsonl"), "--eval", faq, "--tokens", "3000",
                     "--seeds", "2", "--match-languages", "--arm", f"again={web_run / 'raw'}"] + TINY
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((web_run / "ablation" / "ablation.json").read_text())
    assert len(result["evals"]) == 2
    hplt = result["evals"]["hplt"]
    assert sorted(hplt["languages"]) == ["eng_Latn", "rus_Cyrl", "zho_Hans"]
    for part in [hplt, *hplt["languages"].values(), *list(result["evals"].values())[1:]]:
        assert all(len(part["arms"][arm]["bpb"]) == 2 for arm in ("raw", "curated"))
        assert part["verdict"].startswith("curated ")
    assert "zho_Hans" in proc.stdout and "bits/byte" in proc.stdout
    report = (web_run / "report.html").read_text(encoding="utf-8")
    assert "<h3>hplt</h3>" in report and "zho_Hans" in report and "token shares" in report

    tok = Tokenizer(web_run / "tokenizer" / "tokenizer.model")

    def shares(arm):
        counts: dict[str, int] = {}
        for line in (web_run / "ablation" / arm / "docs" / "docs.jsonl").read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            lang = doc.get("metadata", {}).get("language") or "?"
            counts[lang] = counts.get(lang, 0) + len(tok.encode(doc["text"]))
        return {k: v / sum(counts.values()) for k, v in counts.items()}

    curated = shares("curated")
    assert len(curated) >= 2
    for arm in ("raw", "again"):
        matched = shares(arm)
        assert set(matched) == set(curated), arm
        assert all(abs(matched[k] - curated[k]) <= 0.01 for k in curated), (arm, matched, curated)
    assert result["languages_matched"] and result["arms"]["raw"]["language_shares"]
    assert result["compared"]["again"]["language_shares"]


def test_leave_one_out_and_extra_arms(web_run, tmp_path):
    """--leave-one-out adds an arm per step that dropped documents (curated plus that step's drops),
    each compared with curated per language; --arm adds documents of your own, compared with raw;
    the report shows the table."""
    faq = str(shared_path("sites", "python-docs", "_sources", "faq") / "[dg]*.rst.txt")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "docs.jsonl").write_text("".join(json.dumps({"id": f"m{i}", "text": f"Line {i} of my own text. " * 20})
                                             + "\n" for i in range(30)), encoding="utf-8")
    args = CORPUS + ["ablate", str(web_run), "--eval", faq, "--tokens", "2000", "--seeds", "2", "--leave-one-out",
                     "--arm", f"mine={mine}"] + TINY
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((web_run / "ablation" / "ablation.json").read_text())
    compared = result["compared"]
    from corpus.ablate import dropped_documents

    dropping = sorted(p.name.split("-", 1)[1] for p in (web_run / "removed").iterdir() if any(dropped_documents(p)))
    assert sorted(a.removeprefix("without ") for a in compared if a != "mine") == dropping
    curated_docs = result["arms"]["curated"]["documents"]
    for arm, c in compared.items():
        assert c["baseline"] == ("raw" if arm == "mine" else "curated")
        part = c["evals"]["[dg]*"] if "[dg]*" in c["evals"] else next(iter(c["evals"].values()))
        assert len(part["arms"][arm]["bpb"]) == 2 and part["verdict"]
        if arm != "mine":  # the step's drops came back, and nothing twice (line_cleaner lists what it edited too)
            rows = [json.loads(line) for f in (web_run / "removed").glob(f"*-{arm.removeprefix('without ')}/*.jsonl*")
                    for line in gzip.open(f, "rt")]
            dropped = sum(1 for r in rows if r["text"].strip() and r["metadata"].get("filter_reason") != "lines_removed")
            assert c["documents"] == curated_docs + dropped, arm
    assert compared["mine"]["documents"] == 30
    assert "without gopher_quality" in proc.stdout
    assert "Each step left out" in (web_run / "report.html").read_text(encoding="utf-8")


def test_paired_verdict_leaves_out_what_the_seeds_share():
    # every seed's model is 0.1 worse on raw, though the seeds spread by 0.4: paired, that is clear
    words, diff, se = verdict([2.1, 2.5, 1.7], [2.0, 2.4, 1.6])
    assert "larger than seed noise" in words and round(diff, 4) == 0.1 and se < 0.01
