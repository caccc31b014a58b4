"""``corpus ablate RUN_DIR --eval PATH --tokens N [--seeds K]``: does curating pay?

The same GPT, with the run's tokenizer and the same number of training tokens, is trained on
two sets of documents from one run:

- **raw**: the documents as read and extracted, before any filter or dedup (``raw/``, which a
  run writes with ``save_raw: true``);
- **curated**: the documents the run kept (``docs/``),

``K`` times each with different seeds, and every model is scored in bits per byte on ``--eval``:
text or documents you trust, which must not be in either training set (documents of the
training sets whose text is also in the evaluation set are removed from them, and counted).
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
from dataclasses import asdict, replace
from pathlib import Path

import yaml
from loguru import logger

from corpus.core.io import sha256_file, write_json
from corpus.core.rundir import RunDir

ARMS = ("raw", "curated")


def _digest(text: str) -> str:
    return hashlib.blake2b(" ".join(text.split()).encode(), digest_size=16).hexdigest()


def eval_text(path: str, key: str | None = None) -> tuple[str, set[str]]:
    """The evaluation text (documents joined by blank lines) and the digests of its documents;
    with ``key``, only the documents whose metadata ``key`` is true (e.g. human ``keep`` labels)."""
    from corpus.readers import documents

    p = Path(path)
    if key is None and p.is_file() and p.suffix in (".txt", ".md", ".text"):
        text = p.read_text(encoding="utf-8")
        return text, {_digest(text)}
    docs = [d.text for d in documents([path]) if d.text.strip() and (key is None or d.metadata.get(key) is True)]
    if not docs:
        raise ValueError(f"--eval {path}: no documents" + (f" with {key!r} true" if key else ""))
    return "\n\n".join(docs), {_digest(t) for t in docs}


def write_training_docs(source: Path, target: Path, exclude: set[str]) -> tuple[int, int]:
    """Copy the documents of ``source`` to one JSONL file in ``target``, without those whose text
    is in the evaluation set. Returns (documents written, documents left out)."""
    from corpus.core.io import atomic_path
    from corpus.readers import documents

    target.mkdir(parents=True, exist_ok=True)
    kept = left_out = 0
    with atomic_path(target / "docs.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        for doc in documents([str(source)]):
            if not doc.text.strip():
                continue
            if _digest(doc.text) in exclude:
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


def verdict(raw: list[float], curated: list[float]) -> tuple[str, float, float | None]:
    diff = statistics.mean(raw) - statistics.mean(curated)
    if len(raw) < 2 or len(curated) < 2:
        return (f"curated {'better' if diff > 0 else 'worse'} by {abs(diff):.4f} bits per byte; one seed per arm "
                "gives no estimate of seed noise (use --seeds 3 or more)"), diff, None
    se = math.sqrt(statistics.variance(raw) / len(raw) + statistics.variance(curated) / len(curated))
    size = "larger" if abs(diff) > 2 * se else "smaller"
    return (f"curated {'better' if diff > 0 else 'worse'} by {abs(diff):.4f} bits per byte, {size} than seed "
            f"noise (2 standard errors = {2 * se:.4f})"), diff, se


def ablate(run_dir: str | Path, eval_path: str, tokens: int, seeds: int = 3, overrides: dict | None = None,
           eval_key: str | None = None) -> dict:
    from corpus.tokenizer.encode import ShardsConfig, write_shards
    from corpus.trainer.evaluate import evaluate_text
    from corpus.trainer.train import train

    rd = RunDir(run_dir)
    run = rd.root
    if tokens < 1 or seeds < 1:
        raise ValueError("--tokens and --seeds must be at least 1")
    tokenizer = rd.tokenizer_model
    if not tokenizer.exists():
        raise FileNotFoundError(f"{run}: no tokenizer/tokenizer.model; the run needs a tokenizer: section")
    sources = {"raw": rd.raw, "curated": rd.curated_docs()}
    if not any(sources["raw"].glob("*.jsonl*")):
        raise FileNotFoundError(f"{run}: no raw/ documents; run the pipeline with save_raw: true "
                                f"(corpus run PIPELINE --set save_raw=true) to keep them")
    text, exclude = eval_text(eval_path, eval_key)
    cfg = train_config(run, tokens, overrides)
    out = rd.ablation
    arms = {}
    for arm in ARMS:
        docs_dir = out / arm / "docs"
        written, left_out = write_training_docs(sources[arm], docs_dir, exclude)
        if written == 0:
            raise ValueError(f"the {arm} documents ({sources[arm]}) are empty after removing the evaluation text")
        data = {"docs_sha256": sha256_file(docs_dir / "docs.jsonl"), "eval_sha256": _digest(text),
                "tokenizer_sha256": sha256_file(tokenizer)}
        shards = out / arm / "shards"
        if (shards / "data.json").exists() and json.loads((shards / "data.json").read_text()) != data:
            shutil.rmtree(shards)  # other documents than last time: encode them again
        manifest = write_shards([str(docs_dir)], tokenizer, shards, ShardsConfig(val_fraction=0.02))
        write_json(shards / "data.json", data)
        results = []
        for seed in range(seeds):
            seed_dir = out / arm / f"seed{seed}"
            done = seed_dir / "ablation_eval.json"
            key = {"config": asdict(replace(cfg, seed=seed)), **data}
            if done.exists():
                entry = json.loads(done.read_text())
                if entry.get("key") == key:
                    results.append(entry)
                    continue
            if seed_dir.exists():
                shutil.rmtree(seed_dir)  # a model of other settings or data: never resume from it
            logger.info(f"ablate: training on {arm} documents, seed {seed} ({cfg.max_steps} steps)")
            trained = train(shards, seed_dir, replace(cfg, seed=seed))
            scored = evaluate_text(trained["checkpoint"], text, device=cfg.device)
            entry = {"arm": arm, "seed": seed, "bpb": scored["bits_per_byte"], "loss": scored["loss"],
                     "steps": trained["steps"], "tokens_trained": trained["steps"] * trained["tokens_per_step"],
                     "key": key}
            write_json(done, entry)
            results.append(entry)
        bpb = [r["bpb"] for r in results]
        arms[arm] = {"documents": written, "left_out_as_eval_text": left_out,
                     "tokens_available": manifest["totals"]["train"]["tokens"],
                     "tokens_trained": results[0]["tokens_trained"], "bpb": bpb,
                     "mean_bpb": round(statistics.mean(bpb), 4),
                     "std_bpb": round(statistics.stdev(bpb), 4) if len(bpb) > 1 else 0.0}
    words, diff, se = verdict(arms["raw"]["bpb"], arms["curated"]["bpb"])
    result = {"eval": str(eval_path), "eval_key": eval_key, "eval_documents": len(exclude), "eval_bytes": len(text.encode("utf-8")), "tokens": tokens, "seeds": seeds,
              "model": {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size",
                                                      "max_steps", "learning_rate")},
              "arms": arms, "difference_bpb": round(diff, 4),
              "standard_error_bpb": round(se, 4) if se is not None else None, "verdict": words}
    write_json(out / "ablation.json", result)
    try:
        from corpus.report import write_report

        write_report(run)
    except Exception as e:  # the ablation's figures are written; the page can be remade with `corpus report`
        logger.error(f"ablate: the report could not be rewritten ({type(e).__name__}: {e})")
    return result
