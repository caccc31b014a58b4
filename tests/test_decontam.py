"""decontaminate: evaluation items cut from real web text (en, zh) are found when planted in
other real pages, verbatim and with the case, punctuation (full-width forms) and whitespace
changed; no page of a few hundred clean ones is flagged; evaluation sets load alike from JSON
lines, Parquet and a saved Hugging Face dataset (MMLU's layout: the answer picks a choice); a
run drops or reports the matched documents, counts them per set, lists each match in
decontamination.jsonl and shows them in the report."""

from __future__ import annotations

import gzip
import json
import random
import subprocess

import pytest

from corpus.filters.decontam import SPAN_CHARS, Decontaminate, _join, tokens
from tests.conftest import CORPUS, ROOT, shared_path

LANG = {"zh": "zho_Hans", "en": "eng_Latn"}
FULL_WIDTH = str.maketrans({",": "，", ".": "。", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"})


def excerpts(lang: str) -> list[dict]:
    with open(shared_path("web-quality", "hplt2-excerpts.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if r["lang"] == LANG[lang]]


def items_from(rows: list[dict]) -> list[dict]:
    """An evaluation item from each excerpt: its first 400 characters, cut into a question and
    an answer."""
    out = []
    for r in rows:
        text = r["text"][:400]
        cut = len(text) * 6 // 10
        out.append({"id": r["id"], "question": text[:cut], "answer": text[cut:]})
    return out


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


EDITS = {
    "verbatim": lambda t: t,
    "case": lambda t: t.upper(),
    "full_width": lambda t: t.translate(FULL_WIDTH),
    "whitespace": lambda t: "\n  ".join(t.split(" ")),
}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_planted_items_are_found_and_clean_pages_are_not(tmp_path, lang):
    rows = excerpts(lang)
    items, pages = items_from(rows[:40]), rows[40:400]
    write_jsonl(tmp_path / "eval.jsonl", items)
    step = Decontaminate([{"path": str(tmp_path / "eval.jsonl"), "id_key": "id", "name": "web"}])
    assert not any(step.find(p["text"]) for p in pages), "a clean page was flagged"
    rng = random.Random(3)
    for k, item in enumerate(items):
        edit = list(EDITS.values())[k % len(EDITS)]
        page = pages[k]["text"]
        cut = rng.randrange(len(page))
        planted = page[:cut] + "\n" + edit(item["question"] + " " + item["answer"]) + "\n" + page[cut:]
        found = step.find(planted)
        assert [step.index.items[i][1] for i in found] == [item["id"]], (k, item["id"], found.keys())
        answer_only = page[:cut] + edit(item["answer"]) + page[cut:]
        if len(tokens(item["answer"])) >= (step.cjk_n if lang == "zh" else step.n):
            assert step.find(answer_only), item["answer"]


def test_mmlu_layout_loads_alike_from_jsonl_parquet_and_a_saved_dataset(tmp_path):
    import datasets

    rows = [{"question": "Which planet in the solar system has the largest number of confirmed moons orbiting "
                         "it as of the most recent count by astronomers?",
             "choices": ["Jupiter", "Saturn", "Uranus", "Neptune"], "answer": 1},
            {"question": "甲公司于2019年1月1日购入乙公司发行的三年期债券，面值为1000万元，票面年利率为5%，"
                         "每年年末支付利息，到期一次还本，则甲公司应确认的投资收益为多少？",
             "choices": ["50万元", "60万元", "40万元", "30万元"], "answer": 0}]
    write_jsonl(tmp_path / "mmlu.jsonl", rows)
    with gzip.open(tmp_path / "mmlu.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "mmlu.parquet"))
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "saved"))
    sizes = set()
    for path in ("mmlu.jsonl", "mmlu.jsonl.gz", "mmlu.parquet", "saved"):
        step = Decontaminate([{"path": str(tmp_path / path), "name": "mmlu"}])
        sizes.add(len(step.index))
        page = "Quiz night! " + rows[0]["question"].lower() + " The answer: Saturn. Next round."
        assert [step.index.items[i][1] for i in step.find(page)] == ["0"]
        zh_page = "【每日一练】" + rows[1]["question"].replace("，", ",") + "答案：50万元。"
        assert [step.index.items[i][1] for i in step.find(zh_page)] == ["1"]
    assert len(sizes) == 1


def test_bad_evaluation_sets_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Decontaminate([{"path": str(tmp_path / "missing.jsonl")}])
    (tmp_path / "e.jsonl").write_text('{"question": "q"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2: not JSON"):
        Decontaminate([{"path": str(tmp_path / "e.jsonl")}])
    with pytest.raises(ValueError, match="unknown key 'prompt'"):
        Decontaminate([{"path": str(tmp_path / "e.jsonl"), "prompt": "q"}])
    with pytest.raises(ValueError, match="two sets are named 'e'"):
        Decontaminate([{"path": str(tmp_path / "e.jsonl")}, {"path": str(tmp_path / "e.jsonl")}])


@pytest.mark.parametrize("action", ["drop", "report"])
def test_a_run_counts_lists_and_reports_matches(tmp_path, action):
    rows = excerpts("en")
    items = items_from(rows[:5])
    write_jsonl(tmp_path / "eval.jsonl", items)
    docs = [{"id": f"d{i}", "text": r["text"]} for i, r in enumerate(rows[5:45])]
    for k in (3, 17, 30):  # three pages quote an item
        docs[k]["text"] += "\n" + items[k % 5]["question"] + " " + items[k % 5]["answer"]
    write_jsonl(tmp_path / "in.jsonl", docs)
    out = tmp_path / "run"
    (tmp_path / "p.yaml").write_text(
        f"output_dir: {out}\nexecutor: {{type: local, tasks: 2, workers: 1}}\nsteps:\n"
        f"  - jsonl_reader: {{paths: ['{tmp_path}/in.jsonl']}}\n"
        f"  - decontaminate: {{eval_sets: [{{path: '{tmp_path}/eval.jsonl', id_key: id, name: webqa}}], action: {action}}}\n"
        )
    for _ in range(2):  # the second run resumes a finished one: nothing is listed twice
        r = subprocess.run([*CORPUS, "run", str(tmp_path / "p.yaml")], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        matches = [json.loads(line) for line in (out / "decontamination.jsonl").read_text().splitlines()]
        assert sorted((m["id"], m["item"]) for m in matches) == [
            ("d17", items[2]["id"]), ("d3", items[3]["id"]), ("d30", items[0]["id"])]
    assert all(m["eval_set"] == "webqa" and m["ngrams_hit"] > 10 and m["action"] == action for m in matches)
    quoted = {"d3": items[3], "d17": items[2], "d30": items[0]}
    for m in matches:  # the matched text is the whole quoted item, normalised (its first SPAN_CHARS)
        assert m["spans"][0] == _join(tokens(quoted[m["id"]]["question"] + " " + quoted[m["id"]]["answer"]))[:SPAN_CHARS]
    step = json.loads((out / "summary.json").read_text())["steps"][1]
    assert step["counters"]["contaminated_webqa"] == 3
    if action == "drop":
        assert step["dropped"] == {"contaminated_webqa": 3} and step["documents_out"] == 37
    else:
        assert step["dropped"] == {} and step["documents_out"] == 40
    report = (out / "report.html").read_text()
    assert "<h2>Decontamination</h2>" in report and "d17" in report


def test_a_missing_evaluation_set_fails_before_any_work(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "hello"}\n')
    (tmp_path / "p.yaml").write_text(
        f"output_dir: {tmp_path / 'run'}\nsteps:\n  - jsonl_reader: {{paths: ['{tmp_path}/in.jsonl']}}\n"
        f"  - decontaminate: {{eval_sets: [{{path: '{tmp_path}/nope.jsonl'}}]}}\n")
    r = subprocess.run([*CORPUS, "run", str(tmp_path / "p.yaml")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "nope.jsonl" in r.stderr and "does not exist" in r.stderr
    assert not (tmp_path / "run" / "summary.json").exists()
