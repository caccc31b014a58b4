"""``corpus report RUN_DIR``: one self-contained HTML file that shows a run.

Everything comes from the run folder: ``summary.json`` (the funnel), the curated documents
(``docs/``: languages, lengths, quality scores, kept examples), ``removed/`` when the run saved
what it dropped (examples per reason), ``dedup/clusters.jsonl`` (cluster sizes, a few clusters),
the shards (bytes per token by language, totals), ``train/metrics.csv`` (the loss curves) and
``ablation/ablation.json``. Plots are drawn with matplotlib as inline SVG; the page has no
script and loads nothing from outside, so it opens offline and can be mailed as one file.
Large runs are sampled: at most ``SAMPLE`` documents are read from each folder.
"""

from __future__ import annotations

import csv
import html
import io
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

from corpus.core.io import atomic_path
from corpus.core.rundir import RunDir

SAMPLE = 20_000  # documents read from each of docs/ and removed/ (a sample: see _read_documents)
SHOWN_METADATA = ("language", "quality_score", "filter_reason", "url")
EXAMPLES = 3
PREVIEW_CHARS = 400


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: inline SVG needs neither


def _figure(width: float = 6.5, height: float = 3.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "svg.fonttype": "none", "axes.spines.top": False, "axes.spines.right": False})
    return plt.subplots(figsize=(width, height))


def _read_documents(folder: Path, limit: int = SAMPLE) -> list[dict]:
    """A bounded sample of the documents in the JSONL files the run wrote in a folder: up to
    ``limit`` documents, taken from the start of every file in turn (a run of many tasks is
    represented by all of them, and a large run costs no more to report than a small one).
    Each is a small dict (id, the first characters of the text, its length, the metadata the
    report shows, the folder): memory does not grow with the run. Lines that do not parse are
    passed over (the run's own files, not input)."""
    if not folder.is_dir():
        return []
    import fsspec

    files = sorted(p for p in folder.rglob("*.jsonl*") if p.is_file() and "_tmp" not in p.parts)
    out: list[dict] = []
    for k, path in enumerate(files):
        quota = min(limit - len(out), -(-(limit - len(out)) // (len(files) - k)))  # an even share of what is left
        taken = 0
        with fsspec.open(str(path), "rt", compression="infer", encoding="utf-8") as f:
            for line in f:
                if taken >= quota:
                    break
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    text = str(row.get("text") or "")
                    meta = row.get("metadata") or {}
                    out.append({"id": str(row.get("id", "")), "text": text[: PREVIEW_CHARS + 1], "length": len(text),
                                "metadata": {k: meta[k] for k in SHOWN_METADATA if k in meta}, "folder": path.parent.name})
                    taken += 1
    return out


def _sampled(docs: list[dict]) -> str:
    return f" (a sample: the first of every file, {SAMPLE} at most)" if len(docs) >= SAMPLE else ""


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _preview(doc: dict) -> str:
    text = doc["text"][:PREVIEW_CHARS] + ("…" if doc["length"] > PREVIEW_CHARS else "")
    meta = doc["metadata"]
    facts = [f"id {doc['id']}"] + [f"{k} {meta[k]}" for k in ("language", "quality_score", "filter_reason", "url")
                                   if meta.get(k) not in (None, "")]
    return f"<div class='doc'><div class='meta'>{html.escape(' · '.join(map(str, facts)))}</div>" \
           f"<pre>{html.escape(text)}</pre></div>"


def funnel_section(summary: dict) -> str:
    steps = summary.get("steps", [])
    rows = []
    for s in steps:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(s["dropped"].items(), key=lambda kv: -kv[1]))
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(s["skipped"].items(), key=lambda kv: -kv[1]))
        lines = ", ".join(f"{k}={v}" for k, v in sorted(s["lines_removed"].items(), key=lambda kv: -kv[1]))
        rows.append([s["step"], f"{s['files']} files" if s["documents_in"] is None else s["documents_in"],
                     s["documents_out"], reasons, skipped, lines, s["seconds"]])
    fig, ax = _figure(6.5, 0.35 * len(steps) + 0.8)
    names = [s["step"] for s in steps][::-1]
    ax.barh(names, [s["documents_out"] for s in steps][::-1], color="#3a7bd5")
    ax.set_xlabel("documents out of each step")
    return ("<h2>Funnel</h2>" + _svg(fig) +
            _table(["step", "in", "out", "dropped", "skipped", "lines removed", "seconds"], rows))


def languages_section(docs: list[dict]) -> str:
    langs = Counter(d["metadata"].get("language", "?") for d in docs)
    if not langs:
        return ""
    top = langs.most_common(15)
    fig, ax = _figure(6.5, 2.6)
    ax.bar([k for k, _ in top], [v for _, v in top], color="#2a9d8f")
    ax.set_ylabel("curated documents")
    return "<h2>Languages</h2>" + _svg(fig)


def lengths_section(docs: list[dict]) -> str:
    import numpy as np

    lengths = [d["length"] for d in docs if d["length"]]
    if not lengths:
        return ""
    fig, ax = _figure()
    bins = np.logspace(0, np.log10(max(lengths)) + 0.1, 30)
    ax.hist(lengths, bins=bins, color="#e76f51")
    ax.set_xscale("log")
    ax.set_xlabel("characters per curated document")
    ax.set_ylabel("documents")
    p = np.percentile(lengths, [10, 50, 90])
    return (f"<h2>Document lengths</h2>{_svg(fig)}<p>{len(lengths)} documents{_sampled(docs)}; characters: 10th percentile "
            f"{int(p[0])}, median {int(p[1])}, 90th {int(p[2])}</p>")


def quality_section(docs: list[dict]) -> str:
    by_lang = defaultdict(list)
    for d in docs:
        q = d["metadata"].get("quality_score")
        if isinstance(q, (int, float)):
            by_lang[d["metadata"].get("language", "?")].append(q)
    if not by_lang:
        return ""
    fig, ax = _figure()
    for lang, scores in sorted(by_lang.items(), key=lambda kv: -len(kv[1]))[:6]:
        ax.hist(scores, bins=20, range=(0, 1), histtype="step", linewidth=1.5, label=f"{lang} ({len(scores)})")
    ax.set_xlabel("metadata.quality_score")
    ax.set_ylabel("documents")
    ax.legend()
    return "<h2>Quality score by language</h2>" + _svg(fig)


def dedup_section(run: Path, removed: list[dict]) -> str:
    """Read ``clusters.jsonl`` one line at a time: counts, sizes and the three largest clusters,
    whatever the number of clusters."""
    import heapq

    path = RunDir(run).clusters_file
    if not path.exists():
        return ""
    sizes: Counter = Counter()
    removed_n, largest = 0, []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            c = json.loads(line)
            sizes[c["size"]] += 1
            removed_n += len(c["removed"])
            c["removed"] = c["removed"][:5]  # all the page shows of a cluster
            entry = (c["size"], -n, c)
            if len(largest) < 3:
                heapq.heappush(largest, entry)
            else:
                heapq.heappushpop(largest, entry)
    if not sizes:
        return "<h2>Duplicates</h2><p>No duplicate clusters were found.</p>"
    fig, ax = _figure(6.5, 2.4)
    ax.bar([str(k) for k in sorted(sizes)], [sizes[k] for k in sorted(sizes)], color="#8d6cab")
    ax.set_xlabel("cluster size (documents)")
    ax.set_ylabel("clusters")
    texts = {d["id"]: d for d in removed}
    shown = []
    for _, _, c in sorted(largest, reverse=True):
        items = "".join(f"<li>{html.escape(r['id'])}: {r['reason']}, similarity {r['similarity']}</li>"
                        for r in c["removed"])
        sample = texts.get(c["removed"][0]["id"]) if c["removed"] else None
        shown.append(f"<div class='cluster'><b>cluster of {c['size']}</b>, kept {html.escape(c['kept'])}<ul>{items}</ul>"
                     + (_preview(sample) if sample else "") + "</div>")
    return (f"<h2>Duplicates</h2><p>{sum(sizes.values())} clusters, {removed_n} documents removed.</p>"
            + _svg(fig) + "".join(shown))


def decontamination_section(run: Path, shown: int = 10) -> str:
    """Per evaluation set: documents and items matched; the first matches with their n-grams."""
    path = RunDir(run).decontamination_file
    if not path.exists():
        return ""
    docs: dict[str, set] = {}
    items: dict[str, set] = {}
    first: list[dict] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                m = json.loads(line)
                docs.setdefault(m["eval_set"], set()).add(m["id"])
                items.setdefault(m["eval_set"], set()).add(m["item"])
                if len(first) < shown:
                    first.append(m)
    if not docs:
        return "<h2>Decontamination</h2><p>No document holds text of the evaluation sets.</p>"
    table = _table(["evaluation set", "documents matched", "items matched"],
                   [[k, len(docs[k]), len(items[k])] for k in sorted(docs)])
    rows = "".join(f"<li>{html.escape(m['id'])} ({m['action']}): {html.escape(m['eval_set'])} item "
                   f"{html.escape(m['item'])}, {m['ngrams_hit']} n-grams: <q>{html.escape(m['spans'][0][:200])}</q></li>"
                   for m in first)
    return f"<h2>Decontamination</h2>{table}<p>First matches (all in {path.name}):</p><ul>{rows}</ul>"


def shards_section(run: Path) -> str:
    folder = RunDir(run).shards
    if not (folder / "manifest.json").exists():
        return ""
    import pyarrow.compute as pc

    from corpus.core.shards import open_shard, read_manifest, stats

    st = stats(folder)
    rows = [[split, s["documents"], s["tokens"], s["bytes"], s["bytes_per_token"]] for split, s in st["splits"].items()]
    per_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in read_manifest(folder)["shards"]:
        t = open_shard(folder / entry["file"]).select(["language", "num_bytes", "tokens"])
        for lang, nbytes, n in zip(t.column("language").to_pylist(), t.column("num_bytes").to_pylist(),
                                   pc.list_value_length(t.column("tokens")).to_pylist()):
            per_lang[lang or "?"][0] += nbytes
            per_lang[lang or "?"][1] += n
    bpt = {k: v[0] / v[1] for k, v in per_lang.items() if v[1]}
    top = sorted(bpt, key=lambda k: -per_lang[k][1])[:12]
    fig, ax = _figure(6.5, 2.4)
    ax.bar(top, [bpt[k] for k in top], color="#f4a261")
    ax.set_ylabel("bytes per token")
    return ("<h2>Tokenizer and shards</h2><p>Bytes per token by language (UTF-8 bytes of the document / its tokens; "
            "more is better compression).</p>" + _svg(fig) +
            _table(["split", "documents", "tokens", "bytes", "bytes/token"], rows))


def training_section(run: Path) -> str:
    path = RunDir(run).train / "metrics.csv"
    if not path.exists():
        return ""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return ""
    fig, ax = _figure()
    train = [(int(r["step"]), float(r["train_loss"])) for r in rows if r.get("train_loss")]
    if train:
        ax.plot(*zip(*train), label="train loss")
    ax.plot([int(r["step"]) for r in rows], [float(r["val_loss"]) for r in rows], marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    last = rows[-1]
    return (f"<h2>Training</h2>{_svg(fig)}<p>Last evaluation: step {last['step']}, validation loss "
            f"{float(last['val_loss']):.4f}, {float(last['val_bpb']):.4f} bits per byte.</p>")


def post_training_section(run: Path) -> str:
    """Each post-training stage's card: data, held-out figures before and after, a few replies."""
    parts = []
    for stage in ("sft", "reward", "dpo"):
        card_file = RunDir(run).post_training(stage) / "card.json"
        if not card_file.exists():
            continue
        card = json.loads(card_file.read_text(encoding="utf-8"))
        data = card["data"]
        rows = [[k, card["before"].get(k, ""), card["after"].get(k, "")] for k in card["figures"]]
        dropped = ", ".join(f"{k} {v}" for k, v in data["dropped"].items()) or "none"
        parts.append(
            f"<h3>{stage}</h3><p>From <code>{html.escape(card['init'])}</code>, {data['train']} examples trained on and "
            f"{data['heldout']} held out (left out by the checks: {html.escape(dropped)}); "
            f"{card['settings']['max_steps']} steps in {card['seconds']} s.</p>"
            + _table(["held-out figure", "before", "after"], rows)
            + "".join(f"<p class='example'>{html.escape(e['prompt'])} → <b>{html.escape(e['reply'])}</b> "
                      f"(reference {html.escape(str(e['reference']))})</p>" for e in card.get("examples", [])[:3]))
    return "<h2>Post-training</h2>" + "".join(parts) if parts else ""


def _paired_figure(groups: list[tuple[str, dict]]) -> str:
    """How much better curated is than raw, per language: each seed's paired difference (a point;
    seed k of both arms shares its initial weights), their mean and 2 standard errors (the bar).
    The verdict is visible here: a bar that does not cross zero is a called difference."""
    fig, ax = _figure(max(4.0, 1.2 * len(groups) + 2), 2.4)
    for i, (_, g) in enumerate(groups):
        raw, curated = g["arms"]["raw"]["bpb"], g["arms"]["curated"]["bpb"]
        if len(raw) != len(curated):
            continue
        ax.scatter([i] * len(raw), [a - b for a, b in zip(raw, curated)], color="#2a9d8f", s=10, zorder=3)
        se = g.get("standard_error_bpb")
        ax.errorbar([i + 0.15], [g["difference_bpb"]], yerr=[2 * se if se else 0], fmt="D", color="black",
                    capsize=4, markersize=4)
    ax.axhline(0, color="#adb5bd", linewidth=1)
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    ax.set_ylabel("curated better by (bits/byte)")
    return _svg(fig)


def ablation_section(run: Path) -> str:
    """Per evaluation set: bits per byte of both arms, as a whole and per language, with each
    seed's point, and every verdict in a table."""
    path = RunDir(run).ablation / "ablation.json"
    if not path.exists():
        return ""
    ab = json.loads(path.read_text())
    arms = ab["arms"]
    evals = ab.get("evals") or {Path(ab["eval"]).name: {"arms": arms, "verdict": ab["verdict"], "languages": {}}}
    colors = {"raw": "#adb5bd", "curated": "#2a9d8f"}
    parts = ["<h2>Ablation: raw vs curated</h2>",
             _table(["training data", "documents", "tokens trained", "language shares (tokens)"],
                    [[n, a["documents"], a["tokens_trained"],
                      ", ".join(f"{k} {v:.1%}" for k, v in (a.get("language_shares") or {}).items()) or "-"]
                     for n, a in arms.items()])]
    if ab.get("languages_matched"):
        parts.append("<p>The raw arm was sampled down, per language, to the curated arm's token shares.</p>")
    rows = []
    for name, e in evals.items():
        groups = [("all", e)] + sorted(e.get("languages", {}).items())
        fig, ax = _figure(max(4.0, 1.2 * len(groups) + 2), 2.8)
        width = 0.38
        for k, arm in enumerate(("raw", "curated")):
            xs = [i + (k - 0.5) * width for i in range(len(groups))]
            means = [g["arms"][arm]["mean_bpb"] for _, g in groups]
            ax.bar(xs, means, width, color=colors[arm], label=arm)
            for x, (_, g) in zip(xs, groups):
                ax.scatter([x] * len(g["arms"][arm]["bpb"]), g["arms"][arm]["bpb"], color="black", s=8, zorder=3)
        ax.set_xticks(range(len(groups)), [label for label, _ in groups])
        ax.set_ylabel(f"bits per byte on {name}")
        ax.legend()
        parts.append(f"<h3>{html.escape(name)}</h3>" + _svg(fig) + _paired_figure(groups))
        rows += [[name, label, f"{g['arms']['raw']['mean_bpb']:.4f} ± {g['arms']['raw']['std_bpb']:.4f}",
                  f"{g['arms']['curated']['mean_bpb']:.4f} ± {g['arms']['curated']['std_bpb']:.4f}", g["verdict"]]
                 for label, g in groups]
    parts.append(_table(["evaluation set", "language", "raw bits/byte", "curated bits/byte", "verdict"], rows))
    parts.append(f"<p class='verdict'>{html.escape(ab['verdict'])}</p>")
    compared = ab.get("compared") or {}
    if compared:
        rows = []
        for arm, c in compared.items():
            for name, e in c["evals"].items():
                for label, g in [("all", e), *sorted(e["languages"].items())]:
                    # bits per byte the arm adds over its baseline: for "without STEP", what the step saves
                    rows.append([arm, c["documents"], name, label,
                                 f"{-g['difference_bpb']:+.4f}", g["verdict"]])
        parts.append("<h3>Each step left out, and other arms</h3><p>An arm <i>without STEP</i> trains on the "
                     "curated documents plus what that step dropped; its bits per byte minus curated's is what "
                     "the step is worth (positive: the step helps). Other arms are compared with raw.</p>"
                     + _table(["arm", "documents", "evaluation set", "language", "bits/byte minus baseline's",
                               "verdict"], rows))
    return "".join(parts)


def examples_section(docs: list[dict], removed: list[dict]) -> str:
    rng = random.Random(0)
    parts = ["<h2>Examples</h2><h3>Kept</h3>"]
    parts += [_preview(d) for d in rng.sample(docs, min(EXAMPLES, len(docs)))]
    by_reason = defaultdict(list)
    for d in removed:  # removed/<NN>-<step>/: the step that dropped it, and its reason
        step = d["folder"].split("-", 1)[-1]
        reason = "lines it removed" if d["id"].endswith("#lines") else d["metadata"].get("filter_reason", "dropped")
        by_reason[f"{step}: {reason}"].append(d)
    for reason, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        parts.append(f"<h3>Dropped: {html.escape(reason)} ({len(items)})</h3>")
        parts += [_preview(d) for d in rng.sample(items, min(2, len(items)))]
    if not removed:
        parts.append("<p>The run did not save what it dropped: set <code>save_removed: true</code> to see "
                     "examples per reason here.</p>")
    return "".join(parts)


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:13px} td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4} svg{max-width:100%;height:auto;display:block;margin:.5em 0}
.doc{border-left:3px solid #ccc;margin:.6em 0;padding:.2em .8em;background:#fafafa}
.doc pre{white-space:pre-wrap;margin:.3em 0;font-size:12px} .meta{color:#666;font-size:12px}
.verdict{font-weight:bold;font-size:15px}
"""


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` and return its path."""
    rd = RunDir(run_dir)
    run = rd.root
    if not rd.summary_file.exists():
        raise FileNotFoundError(f"{run}: no summary.json; not a run folder (or the run has not finished its steps)")
    summary = rd.summary()
    docs = _read_documents(rd.curated_docs()) or _read_documents(rd.docs)
    removed = _read_documents(rd.removed)
    first = summary["steps"][0] if summary.get("steps") else None
    last = summary["steps"][-1] if summary.get("steps") else None
    intro = (f"<p>{first['documents_out'] if first else 0} documents read, {last['documents_out'] if last else 0} "
             f"kept; steps took {summary.get('steps_wall_seconds', '?')} s, the whole run "
             f"{summary.get('wall_seconds', '?')} s. Output: {html.escape(str(summary.get('output_dir', run)))}</p>")
    sections = [funnel_section(summary), languages_section(docs), lengths_section(docs), quality_section(docs),
                dedup_section(run, removed), decontamination_section(run), shards_section(run), training_section(run), post_training_section(run),
                ablation_section(run),
                examples_section(docs, removed)]
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>corpus report: "
            f"{html.escape(str(summary.get('name', run.name)))}</title><style>{STYLE}</style></head><body>"
            f"<h1>corpus report: {html.escape(str(summary.get('name', run.name)))}</h1>{intro}"
            + "".join(s for s in sections if s) + "</body></html>")
    path = rd.report_file
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return path
