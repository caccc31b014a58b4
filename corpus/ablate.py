"""``corpus ablate RUN_DIR --eval PATH --tokens N [--seeds K]``: does curating pay?

The same GPT, with the run's tokenizer and the same number of training tokens, is trained on
two sets of documents from one run:

- **raw**: the documents as read and extracted, before any filter or dedup (``raw/``, which a
  run writes with ``save_raw: true``);
- **curated**: the documents the run kept (``docs/``),

``K`` times each with different seeds, and every model is scored in bits per byte on ``--eval``:
text or documents you trust, which must not be in either training set: a training document
that holds any 13-word n-gram of the evaluation text (33 characters in Chinese and Japanese,
normalised as the ``decontaminate`` step does) is removed from every arm, and counted. So a
copy that a step edited (a line cut, spaces changed) or a near-duplicate is left out too.
The spread across seeds says how much of a difference is noise: the verdict compares the
difference of the means with twice its standard error. Everything lands in
``RUN_DIR/ablation/`` (shards, checkpoints, ``ablation.json``), and the run's report shows it.
Re-running resumes: finished seeds are not trained again.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml
from loguru import logger

from corpus import console
from corpus.core.io import sha256_file, write_json
from corpus.core.rundir import RunDir

ARMS = ("raw", "curated")


def _digest(text: str) -> str:
    return hashlib.blake2b(" ".join(text.split()).encode(), digest_size=16).hexdigest()


@dataclass
class EvalSet:
    """One ``--eval`` set: its text as a whole (``all``) and per language, when its documents say
    their language (metadata ``language`` or ``lang``), and the digests of its documents."""

    name: str
    path: str
    groups: dict[str, str]
    digests: set[str]
    texts: list[str]

    @property
    def key(self) -> str:
        return _digest("\x00".join(f"{k}\x01{v}" for k, v in sorted(self.groups.items())))


LANGUAGE_KEYS = ("language", "lang")


def eval_set(path: str, key: str | None = None) -> EvalSet:
    """The evaluation text (documents joined by blank lines), per language too, and the digests of
    its documents; with ``key``, only the documents whose metadata ``key`` is true (e.g. human
    ``keep`` labels)."""
    from corpus.readers import documents

    p = Path(path)
    name = p.name.split(".")[0] or "eval"
    if key is None and p.is_file() and p.suffix in (".txt", ".md", ".text"):
        text = p.read_text(encoding="utf-8")
        return EvalSet(name, path, {"all": text}, {_digest(text)}, [text])
    docs = [d for d in documents([path]) if d.text.strip() and (key is None or d.metadata.get(key) is True)]
    if not docs:
        raise ValueError(f"--eval {path}: no documents" + (f" with {key!r} true" if key else ""))
    groups: dict[str, list[str]] = {"all": [d.text for d in docs]}
    for d in docs:
        language = next((str(d.metadata[k]) for k in LANGUAGE_KEYS if d.metadata.get(k)), None)
        if language:
            groups.setdefault(language, []).append(d.text)
    return EvalSet(name, path, {k: "\n\n".join(v) for k, v in groups.items()}, {_digest(d.text) for d in docs},
                   [d.text for d in docs])


class Exclusion:
    """What is left out of every training set: documents equal to an evaluation document (up to
    whitespace) or holding any n-gram of one (``filters.decontam.Index``)."""

    def __init__(self, texts: list[str], n: int = 13):
        from corpus.filters.decontam import Index

        self.digests = {_digest(t) for t in texts}
        self.index = Index.of_texts(texts, n=n)

    def __contains__(self, text: str) -> bool:
        return _digest(text) in self.digests or self.index.holds(text)


def write_training_docs(source: Path | list[Path], target: Path, exclude: Exclusion) -> tuple[int, int]:
    """Copy the documents of ``source`` (one folder or several) to one JSONL file in ``target``,
    without those that ``exclude`` holds (evaluation text), each id once (the first folder's version),
    and without the lines a step cut out of documents it kept (which its removed/ also lists).
    Returns (documents written, documents left out)."""
    from corpus.core.io import atomic_path
    from corpus.readers import documents

    target.mkdir(parents=True, exist_ok=True)
    kept = left_out = 0
    sources = [str(p) for p in (source if isinstance(source, list) else [source])]
    with atomic_path(target / "docs.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        seen: set[str] = set()
        for doc in documents(sources):
            if not doc.text.strip() or doc.id in seen or doc.metadata.get("filter_reason") == "lines_removed":
                continue  # (lines a step cut from a document it kept: not a document of their own)
            seen.add(doc.id)
            if doc.text in exclude:
                left_out += 1
                continue
            f.write(json.dumps({"id": doc.id, "text": doc.text, "metadata": {
                k: doc.metadata[k] for k in ("language", "quality_score") if k in doc.metadata}}, ensure_ascii=False) + "\n")
            kept += 1
    return kept, left_out


def train_config(run: Path, tokens: int, overrides: dict | None):
    """The run's ``train:`` settings (or the defaults), with max_steps set so that every model
    sees ``tokens`` training tokens, one evaluation at the end and no sample."""
    from corpus.trainer.config import TrainConfig

    pipeline_file = RunDir(run).pipeline_file
    pipeline = yaml.safe_load(pipeline_file.read_text()) if pipeline_file.exists() else {}
    settings = dict((pipeline or {}).get("train") or {})
    settings.update(overrides or {})
    cfg = TrainConfig(**settings)
    per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum
    steps = max(1, math.ceil(tokens / per_step))
    return replace(cfg, max_steps=steps, eval_interval=steps, warmup_steps=min(cfg.warmup_steps, steps // 10),
                   checkpoint_interval=0, sample_tokens=0, eval_batches=min(cfg.eval_batches, 4))


def verdict(raw: list[float], curated: list[float], names: tuple[str, str] = ("raw", "curated"),
            ) -> tuple[str, float, float | None]:
    """How ``names[1]``'s models compare with ``names[0]``'s: the difference of the mean bits per byte
    (positive: ``names[1]`` better) against twice its standard error. Seed k of both arms starts
    from the same initial weights, so the error is the paired one (the spread of the per-seed
    differences), which leaves out what the seeds share."""
    base, other = names
    diff = statistics.mean(raw) - statistics.mean(curated)
    if len(raw) < 2 or len(curated) < 2:
        return (f"{other} {'better' if diff > 0 else 'worse'} by {abs(diff):.4f} bits per byte; one seed per arm "
                "gives no estimate of seed noise (use --seeds 3 or more)"), diff, None
    if len(raw) == len(curated):
        d = [a - b for a, b in zip(raw, curated)]
        var_one = statistics.variance(d)  # of one seed's difference
        se = math.sqrt(var_one / len(d))
    else:
        var_one = statistics.variance(raw) + statistics.variance(curated)
        se = math.sqrt(statistics.variance(raw) / len(raw) + statistics.variance(curated) / len(curated))
    size = "larger" if abs(diff) > 2 * se else "smaller"
    words = (f"{other} {'better' if diff > 0 else 'worse'} than {base} by {abs(diff):.4f} bits per byte, {size} "
             f"than seed noise (2 standard errors = {2 * se:.4f})")
    if size == "smaller" and diff:  # seeds per arm at which 2 SE would fall below this difference, at this spread
        n = math.ceil(4 * var_one / diff ** 2)
        if n > 1000:  # a difference this small is none that seeds at this budget can show
            words += "; over 1,000 seeds per arm would be needed to separate a difference this small"
        else:
            words += f"; at this spread about {n} seeds per arm would separate a difference this large"
    return words, diff, se


def _summary(scores: dict[str, list[float]], names: tuple[str, str] = ("raw", "curated")) -> dict:
    """Per arm: the seeds' bits per byte, their mean and spread; the difference and its verdict."""
    out = {"arms": {arm: {"bpb": b, "mean_bpb": round(statistics.mean(b), 4),
                          "std_bpb": round(statistics.stdev(b), 4) if len(b) > 1 else 0.0}
                    for arm, b in scores.items()}}
    words, diff, se = verdict(scores[names[0]], scores[names[1]], names)
    out.update(difference_bpb=round(diff, 4), standard_error_bpb=round(se, 4) if se is not None else None, verdict=words)
    return out


def _language_labeler(run: Path):
    """The run's own language_id step (its settings from pipeline.yaml), to label raw documents
    the way the curated ones were labelled; the default one if the run had none."""
    from corpus import catalog

    pipeline_file = RunDir(run).pipeline_file
    steps = (yaml.safe_load(pipeline_file.read_text()) or {}).get("steps", []) if pipeline_file.exists() else []
    params = next((dict(s["language_id"] or {}) for s in steps if isinstance(s, dict) and "language_id" in s), {})
    return catalog.steps()["language_id"](**params)


def token_shares(rows: list[dict], counts: list[int]) -> dict[str, float]:
    total = sum(counts) or 1
    shares: dict[str, float] = {}
    for row, n in zip(rows, counts):
        lang = row.get("metadata", {}).get("language") or "?"
        shares[lang] = shares.get(lang, 0.0) + n / total
    return {k: round(v, 4) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}


def match_languages(raw_dir: Path, curated_dir: Path, tokenizer: Path, labeler) -> dict[str, float]:
    """Rewrite an arm's documents (``raw_dir``: the raw arm's, or any other arm's) so that each
    language's share of its tokens is the curated arm's: the documents are labelled by the run's
    language step, and per language the first ones in a fixed order (their digests) are kept, as
    many as the curated mix allows. Returns the arm's shares after matching."""
    from datatrove.data import Document

    from corpus.core.io import atomic_path

    from corpus.tokenizer.sp import Tokenizer

    tok = Tokenizer(tokenizer)
    target = token_shares(*_rows_and_tokens(curated_dir, tok))
    raw, raw_tokens = _rows_and_tokens(raw_dir, tok)
    labelled = labeler.run(iter(Document(text=r["text"], id=r["id"]) for r in raw))
    for row, doc in zip(raw, labelled):
        row.setdefault("metadata", {})["language"] = doc.metadata.get("language") or "?"
    by_lang: dict[str, list[int]] = {}
    for i, row in enumerate(raw):
        by_lang.setdefault(row["metadata"]["language"], []).append(i)
    available = {lang: sum(raw_tokens[i] for i in idx) for lang, idx in by_lang.items()}
    missing = [lang for lang, share in target.items() if share > 0 and not available.get(lang)]
    if missing:
        raise ValueError(f"--match-languages: the raw documents have no text in {', '.join(missing)}, which the "
                         "curated ones have")
    total = min(available[lang] / share for lang, share in target.items() if share > 0)
    keep: list[tuple[int, dict, int]] = []  # (position, row, tokens)
    for lang, share in target.items():
        want = round(share * total)
        for i in sorted(by_lang[lang], key=lambda i: _digest(raw[i]["text"])):
            if want <= 0:
                break
            row, n = raw[i], raw_tokens[i]
            if n > want:  # the last document of a language is cut to the tokens its share has left
                row = {**row, "text": tok.decode(tok.encode(row["text"])[:want])}
                n = want
            keep.append((i, row, n))
            want -= n
    keep.sort(key=lambda k: k[0])
    with atomic_path(raw_dir / "docs.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for _, row, _ in keep), encoding="utf-8")
    return token_shares([row for _, row, _ in keep], [n for _, _, n in keep])


@dataclass
class Arm:
    """One training set: its documents (folders), and the arm it is compared with."""

    name: str
    sources: list[Path]
    baseline: str | None = None


def dropped_documents(folder: Path):
    """The documents a step dropped, from its removed/ folder: not the lines it cut out of
    documents it kept (listed there too), nor documents left empty."""
    from corpus.readers import documents

    return (d for d in documents([str(folder)]) if d.text.strip() and d.metadata.get("filter_reason") != "lines_removed")


def extra_arms(rd: RunDir, leave_one_out: bool, arms: dict[str, str] | None) -> list[Arm]:
    """Arms beside raw and curated. ``leave_one_out``: for each step of the run that dropped
    documents (``save_removed``), the curated documents plus what that step dropped, compared with
    curated (what the step is worth; a document a later step would also have dropped comes back
    too, and the lines a step removed from documents it kept do not). ``arms``: name → documents,
    compared with raw."""
    out = []
    if leave_one_out:
        if not rd.removed.exists():
            raise FileNotFoundError(f"{rd.root}: no removed/ documents; --leave-one-out needs a run with "
                                    "save_removed: true")
        steps = (yaml.safe_load(rd.pipeline_file.read_text()) or {}).get("steps", [])
        names = [next(iter(s)) if isinstance(s, dict) else str(s) for s in steps]
        for k, name in enumerate(names):
            folder = rd.removed_by(k, name)
            if folder.exists() and any(dropped_documents(folder)):
                label = f"without {name}" if names.count(name) == 1 else f"without {name} #{k + 1}"
                out.append(Arm(label, [rd.curated_docs(), folder], "curated"))
    for name, path in (arms or {}).items():
        if name in ARMS or any(a.name == name for a in out):
            raise ValueError(f"--arm {name}: that name is taken")
        if not Path(path).exists():
            raise FileNotFoundError(f"--arm {name}={path}: no such documents")
        out.append(Arm(name, [Path(path)], "raw"))
    return out


def ablate(run_dir: str | Path, eval_paths: str | list[str], tokens: int, seeds: int = 3,
           overrides: dict | None = None, eval_key: str | None = None, match: bool = False,
           leave_one_out: bool = False, arms_extra: dict[str, str] | None = None) -> dict:
    from corpus.tokenizer.encode import ShardsConfig, write_shards
    from corpus.tokenizer.sp import Tokenizer
    from corpus.trainer.evaluate import evaluate_text
    from corpus.trainer.train import train

    rd = RunDir(run_dir)
    run = rd.root
    if tokens < 1 or seeds < 1:
        raise ValueError("--tokens and --seeds must be at least 1")
    tokenizer = rd.tokenizer_model
    if not tokenizer.exists():
        raise FileNotFoundError(f"{run}: no tokenizer/tokenizer.model; the run needs a tokenizer: section")
    extras = extra_arms(rd, leave_one_out, arms_extra)
    sources = {"raw": rd.raw, "curated": rd.curated_docs(), **{a.name: a.sources for a in extras}}
    if not any(sources["raw"].glob("*.jsonl*")):
        raise FileNotFoundError(f"{run}: no raw/ documents; run the pipeline with save_raw: true "
                                f"(corpus run PIPELINE --set save_raw=true) to keep them")
    evals = [eval_set(p, eval_key) for p in ([eval_paths] if isinstance(eval_paths, str) else eval_paths)]
    names = [e.name for e in evals]
    for i, e in enumerate(evals):  # two files of one name: the second is told apart by its position
        if names.count(e.name) > 1:
            e.name = f"{e.name}-{i + 1}"
    exclude = Exclusion([t for e in evals for t in e.texts])
    cfg = train_config(run, tokens, overrides)
    out = rd.ablation
    arms, shares = {}, {}
    for arm in ("curated", "raw", *(a.name for a in extras)):  # curated first: raw may be matched to its mix
        docs_dir = out / arm_folder(arm) / "docs"
        written, left_out = write_training_docs(sources[arm], docs_dir, exclude)
        if arm != "curated" and match:  # every other arm at the curated arm's language mix
            shares[arm] = match_languages(docs_dir, out / "curated" / "docs", tokenizer, _language_labeler(run))
            written = sum(1 for line in (docs_dir / "docs.jsonl").read_text(encoding="utf-8").splitlines() if line)
        if written == 0:
            raise ValueError(f"the {arm} documents ({sources[arm]}) are empty after removing the evaluation text")
        data = {"docs_sha256": sha256_file(docs_dir / "docs.jsonl"), "tokenizer_sha256": sha256_file(tokenizer)}
        shards = out / arm_folder(arm) / "shards"
        if (shards / "data.json").exists() and json.loads((shards / "data.json").read_text()) != data:
            shutil.rmtree(shards)  # other documents than last time: encode them again
        with console.job_output(rd.ablation_log):  # datatrove's task logs and stats tables: in the log file
            manifest = write_shards([str(docs_dir)], tokenizer, shards, ShardsConfig(val_fraction=0.02))
        write_json(shards / "data.json", data)
        results = []
        for seed in range(seeds):
            seed_dir = out / arm_folder(arm) / f"seed{seed}"
            done = seed_dir / "ablation_eval.json"
            key = {"config": asdict(replace(cfg, seed=seed)), **data}
            entry = json.loads(done.read_text()) if done.exists() else {}
            began = None  # a model trained now (not resumed): its training time is shown
            if entry.get("key") != key:
                if seed_dir.exists():
                    shutil.rmtree(seed_dir)  # a model of other settings or data: never resume from it
                logger.info(f"ablate: training on {arm} documents, seed {seed} ({cfg.max_steps} steps; "
                            f"steps in {rd.ablation_log})")
                began = time.time()
                with console.job_output(rd.ablation_log):
                    trained = train(shards, seed_dir, replace(cfg, seed=seed))
                entry = {"arm": arm, "seed": seed, "checkpoint": str(trained["checkpoint"]), "steps": trained["steps"],
                         "tokens_trained": trained["steps"] * trained["tokens_per_step"], "key": key, "scores": {}}
            for e in evals:  # scores of this model on each set and each of its languages, kept by set content
                if e.key not in entry.setdefault("scores", {}):
                    entry["scores"][e.key] = {group: evaluate_text(entry["checkpoint"], text, device=cfg.device)["bits_per_byte"]
                                              for group, text in e.groups.items()}
                    logger.info(f"ablate: {arm}, seed {seed}, on {e.name}: " + ", ".join(
                        f"{group} {bpb:.4f}" for group, bpb in entry["scores"][e.key].items()) + " bits/byte"
                        + (f" (trained in {time.time() - began:.0f}s)" if began else ""))
            write_json(done, entry)
            results.append(entry)
        arms[arm] = {"documents": written, "left_out_as_eval_text": left_out,
                     "tokens_available": manifest["totals"]["train"]["tokens"],
                     "tokens_trained": results[0]["tokens_trained"], "results": results}
    scored = {}
    for e in evals:
        one = {"path": str(e.path), "documents": len(e.digests), "bytes": len(e.groups["all"].encode("utf-8")),
               **_summary({arm: [r["scores"][e.key]["all"] for r in arms[arm]["results"]] for arm in ARMS}),
               "languages": {}}
        for group in sorted(g for g in e.groups if g != "all"):
            one["languages"][group] = {"bytes": len(e.groups[group].encode("utf-8")),
                                       **_summary({arm: [r["scores"][e.key][group] for r in arms[arm]["results"]]
                                                   for arm in ARMS})}
        scored[e.name] = one
    compared = {}
    for a in extras:  # each extra arm against its baseline, per set and language
        per_set = {}
        for e in evals:
            names = (a.baseline, a.name)
            one = _summary({n: [r["scores"][e.key]["all"] for r in arms[n]["results"]] for n in names}, names)
            one["languages"] = {g: _summary({n: [r["scores"][e.key][g] for r in arms[n]["results"]] for n in names},
                                            names) for g in sorted(g for g in e.groups if g != "all")}
            per_set[e.name] = one
        compared[a.name] = {"baseline": a.baseline, "documents": arms[a.name]["documents"], "evals": per_set,
                            **({"language_shares": shares[a.name]} if a.name in shares else {})}
    first = scored[evals[0].name]
    for arm in ARMS:
        arms[arm].pop("results")
        arms[arm].update(first["arms"][arm])
        if match:
            arms[arm]["language_shares"] = shares.get(arm) or token_shares(*_rows_and_tokens(out / arm / "docs", Tokenizer(tokenizer)))
    arms = {arm: arms[arm] for arm in ARMS}
    result = {"eval": str(evals[0].path), "eval_key": eval_key, "eval_documents": first["documents"],
              "eval_bytes": first["bytes"], "tokens": tokens, "seeds": seeds, "languages_matched": match,
              "model": {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size",
                                                      "max_steps", "learning_rate")},
              "arms": arms, "difference_bpb": first["difference_bpb"], "standard_error_bpb": first["standard_error_bpb"],
              "verdict": first["verdict"], "evals": scored, "compared": compared}
    write_json(out / "ablation.json", result)
    try:
        from corpus.report import write_report

        write_report(run)
    except Exception as e:  # the ablation's figures are written; the page can be remade with `corpus report`
        logger.error(f"ablate: the report could not be rewritten ({type(e).__name__}: {e})")
    return result


def arm_folder(arm: str) -> str:
    """The arm's folder name in ``ablation/`` ("without gopher_quality" → "without-gopher_quality")."""
    return "-".join(arm.replace("#", "").split())


def _rows_and_tokens(folder: Path, tok) -> tuple[list[dict], list[int]]:
    rows = [json.loads(line) for line in (folder / "docs.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return rows, [len(tok.encode(r["text"])) for r in rows]
