"""The ``corpus`` command line.

    corpus run PIPELINE.yaml [--set key=value ...]   run a pipeline
    corpus crawl PIPELINE.yaml [--worker NAME]       run only the crawl: stage (WARC files in crawl/)
    corpus steps                                     list steps, their parameters and defaults
    corpus init [PATH]                               write a commented starter pipeline.yaml
    corpus tokenizer train --input ... --vocab-size N --output DIR
    corpus quality train --positive ... [--negative ...] [--label-key KEY] --output DIR
    corpus shards stats DIR | corpus shards verify DIR
    corpus train CONFIG.yaml --shards DIR --output DIR
    corpus report RUN_DIR                            RUN_DIR/report.html: one page with plots
    corpus ablate RUN_DIR --eval PATH [--eval PATH] --tokens N [--seeds K] [--match-languages] [--leave-one-out]
    corpus eval CHECKPOINT --text FILE                 loss and bits per byte on any text
    corpus sample CHECKPOINT [--prompt TEXT]
    corpus export CHECKPOINT --output DIR            a transformers folder (AutoModelForCausalLM, AutoTokenizer)
    corpus sft --init CKPT --data FILE --output DIR [--set key=value ...]     fine-tune on conversations
    corpus reward --init CKPT --data PAIRS --output DIR                       a reward model from preference pairs
    corpus dpo --init SFT_CKPT --data PAIRS --output DIR                      preference tuning (DPO)
    corpus chat CKPT [--prompts FILE --output FILE] [--temperature 0]         talk to a model, or answer a file
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

STARTER = """\
# A corpus pipeline. Documents flow through `steps` from top to bottom; `corpus steps` lists
# every step with its parameters. Relative input paths are relative to where you run
# `corpus run`; relative output paths are inside output_dir.
name: my-corpus
output_dir: runs/my-corpus

# local (default), ray or slurm. tasks: how many shares the input is split into;
# workers: how many run at once.
executor: {type: local, tasks: 2, workers: 2}
save_removed: false    # true: what each filter drops, in removed/ (the report shows examples)
save_raw: false        # true: documents as extracted, in raw/ (corpus ablate compares raw and curated)

# Optional: crawl first (Scrapy; WARC files in runs/my-corpus/crawl/), then read crawl/*.warc.gz.
# crawl: {seeds: ["https://docs.example.org/"], allowed_domains: [docs.example.org], delay: 1.0, max_pages: 1000}

steps:
  - warc_reader: {paths: ["data/*.warc.gz"]}      # or crawl/*.warc.gz; jsonl_reader, parquet_reader, files_reader, ...
  - html_extract: {timeout: 5}                     # main text of each HTML page (trafilatura: the slow, thorough one)
  - line_cleaner: {}                               # navigation, login/app/VIP, copyright lines; site templates
  - language_id: {}                                # metadata.language, metadata.language_score
  - language_filter: {languages: [en, zh], min_score: 0.65}
  - adult_spam_filter: {}                          # adult URLs and warnings, bad words, SEO keyword lists
  - gopher_quality: {}
  - fineweb_quality: {}
  - quality_classifier: {model: hplt2, min_score: card}   # metadata.quality_score (bundled model: en, zh, ru)
  - minhash_dedup: {threshold: 0.8}                # exact and near duplicates
  - jsonl_writer: {path: docs}                     # curated documents: runs/my-corpus/docs/

# Optional stages after the steps: a BPE tokenizer trained on the curated documents,
# Arrow token shards, and a small GPT trained on them.
tokenizer: {vocab_size: 8000}
shards: {val_fraction: 0.01}
train: {max_steps: 500}
"""


def cmd_run(args) -> int:
    from corpus.config import load_config
    from corpus.pipeline import Runner

    cfg = load_config(args.pipeline, args.set or [])
    Runner(cfg).run()
    return 0


def cmd_crawl(args) -> int:
    from corpus.config import ConfigError, RunError, load_config

    cfg = load_config(args.pipeline, args.set or [])
    if "crawl" not in cfg.stages:
        raise ConfigError(f"{args.pipeline}: no crawl: section (seeds, allowed_domains, delay, ...)")
    from corpus.crawler.frontier import FrontierError
    from corpus.crawler.run import CrawlError, crawl, write_spec

    try:
        if args.worker is None:
            crawl(cfg.output_dir, cfg.name, cfg.stages["crawl"])
            return 0
        from corpus.crawler.worker import run_worker  # one more process on a shared redis:// frontier

        return run_worker(str(write_spec(cfg.output_dir, cfg.name, cfg.stages["crawl"])), args.worker)
    except (CrawlError, FrontierError, ValueError) as e:
        raise RunError(f"crawl: {e}") from None


def cmd_steps(args) -> int:
    from corpus import catalog
    from corpus.core.registry import config_params, step_params

    def show(name: str, doc: str, params) -> None:
        print(name)
        if doc:
            print(textwrap.indent(textwrap.fill(" ".join(doc.split()), 92), "    "))
        for p in params:
            default = "(required)" if p.required else f"= {p.default!r}"
            print(f"      {p.name}: {p.type_name} {default}")
        print()

    for name, cls in sorted(catalog.steps().items()):
        if not args.name or name in args.name:
            show(name, (cls.__doc__ or "").strip(), step_params(cls))
    stages = {n: st for n, st in catalog.stages().items() if not args.name or n in args.name}
    if stages:
        print("# stages: top-level sections of a pipeline file, run in this order around the steps\n")
    for name, stage in stages.items():
        when = "before the steps" if stage.before_steps else "after the steps"
        needs = f"; needs {', '.join(stage.needs)}" if stage.needs else ""
        show(f"{name}:", f"{stage.doc} ({when}{needs})", config_params(stage.config))
    return 0


def cmd_init(args) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"error: {path} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    path.write_text(STARTER, encoding="utf-8")
    print(f"wrote {path}; edit the paths, then: corpus run {path}")
    return 0


def cmd_tokenizer_train(args) -> int:
    from corpus.tokenizer.train import TokenizerConfig, train_tokenizer

    cfg = TokenizerConfig(vocab_size=args.vocab_size, sample_bytes=args.sample_bytes, num_threads=args.threads)
    card = train_tokenizer(args.input, args.output, cfg)
    print(f"tokenizer: {Path(args.output) / 'tokenizer.model'}, vocab {card['vocab_size']}, "
          f"held-out bytes/token {card['heldout_bytes_per_token']}")
    return 0


def cmd_quality_train(args) -> int:
    from corpus.config import ConfigError
    from corpus.filters.classifier import ClassifierConfig, train_classifier
    from corpus.readers import InputError

    try:
        cfg = ClassifierConfig(held_out=args.held_out, epoch=args.epoch, threads=args.threads, seed=args.seed)
        card = train_classifier(args.positive, args.negative or [], args.output, cfg, label_key=args.label_key)
    except (ValueError, InputError, FileNotFoundError) as e:
        raise ConfigError(f"corpus quality train: {e}") from None
    h = card["held_out"]
    print(f"quality model: {Path(args.output) / card['model']} (card: {Path(args.output) / 'card.json'})")
    print(f"  trained on {card['documents']['train']}, held out {card['documents']['held_out']}, "
          f"{card['train_seconds']} s")
    print(f"  held out: ROC AUC {h['roc_auc']}, precision {h['precision']}, recall {h['recall']} at 0.5")
    for lang, m in card["held_out_by_language"].items():
        print(f"    {lang:<10} {m['documents']:>6} documents  ROC AUC {m['roc_auc']}")
    return 0


def cmd_report(args) -> int:
    from corpus.config import ConfigError
    from corpus.report import write_report

    try:
        path = write_report(args.run_dir)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    print(f"report: {path}")
    return 0


def cmd_ablate(args) -> int:
    from corpus.ablate import ablate
    from corpus.config import ConfigError, apply_overrides

    try:
        overrides: dict = {}
        apply_overrides(overrides, args.set or [])
        extra = {}
        for item in args.arm or []:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--arm {item!r}: write NAME=PATH")
            extra[name] = path
        result = ablate(args.run_dir, args.eval, args.tokens, args.seeds, overrides, args.eval_key, args.match_languages,
                        args.leave_one_out, extra)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"corpus ablate: {e}") from None
    print(f"{result['tokens']} training tokens per model, {result['seeds']} seeds"
          + (", every arm matched to the curated arm's language mix" if result["languages_matched"] else "") + ":")
    for arm, a in result["arms"].items():
        print(f"  {arm:<8} {a['documents']:>7} documents" + (f"  languages {a['language_shares']}" if "language_shares" in a else ""))
    for name, e in result["evals"].items():
        print(f"{name} ({e['path']}, {e['bytes']} bytes):")
        for label, part in [("all", e), *e["languages"].items()]:
            cells = "  ".join(f"{arm} {a['mean_bpb']:.4f} ± {a['std_bpb']:.4f}" for arm, a in part["arms"].items())
            print(f"  {label:<10} bits/byte  {cells}  ->  {part['verdict']}")
    for arm, c in result["compared"].items():
        print(f"{arm} ({c['documents']} documents) against {c['baseline']}:")
        for name, e in c["evals"].items():
            for label, part in [("all", e), *e["languages"].items()]:
                print(f"  {name} {label:<10} {part['verdict']}")
    return 0


def cmd_shards_stats(args) -> int:
    import json

    from corpus import shards

    print(json.dumps(shards.stats(args.folder), indent=2, ensure_ascii=False))
    return 0


def cmd_shards_verify(args) -> int:
    from corpus import shards

    problems = shards.verify(args.folder)
    for p in problems:
        print(f"FAIL {p}")
    n = len(shards.read_manifest(args.folder)["shards"])
    print(f"{args.folder}: {n} shards, {'all match the manifest' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


def cmd_train(args) -> int:
    from corpus.config import apply_overrides, read_yaml, stage_config
    from corpus.trainer.train import train

    section = {}
    if args.config:
        section = read_yaml(args.config) or {}
        if isinstance(section, dict) and "train" in section:  # a pipeline file: its train: section
            section = section["train"] or {}
    tree = {"train": section}
    apply_overrides(tree, [s if s.startswith("train.") else f"train.{s}" for s in args.set or []])
    train(args.shards, args.output, stage_config("train", tree["train"], args.config or "--set"))
    return 0


def cmd_eval(args) -> int:
    import json

    from corpus.trainer.evaluate import evaluate_text

    text = Path(args.text).read_text(encoding="utf-8")
    print(json.dumps(evaluate_text(args.checkpoint, text, args.device), indent=2))
    return 0


def cmd_sample(args) -> int:
    from corpus.trainer.checkpoint import checkpoint_tokenizer, load_model
    from corpus.trainer.runtime import pick_device
    from corpus.trainer.sample import sample_text

    device = pick_device(args.device)
    model, state = load_model(args.checkpoint, device)
    print(sample_text(model, checkpoint_tokenizer(state), args.prompt, args.tokens, args.temperature, args.top_k,
                      args.seed, device))
    return 0


def cmd_export(args) -> int:
    import json

    from corpus.trainer.export import export_hf

    try:
        summary = export_hf(args.checkpoint, args.output)
    except (ImportError, ValueError) as e:  # transformers missing; a checkpoint that does not export
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def cmd_post_train(args) -> int:
    import json

    from corpus.config import ConfigError, apply_overrides, stage_config
    from corpus.trainer.posttrain import post_train

    section = {"init": args.init} | ({"data": args.data} if args.data else {})
    tree = {args.command: section}
    apply_overrides(tree, [s if s.startswith(f"{args.command}.") else f"{args.command}.{s}" for s in args.set or []])
    try:
        result = post_train(args.command, args.output, stage_config(args.command, tree[args.command], "--set"))
    except (ValueError, FileNotFoundError) as e:  # no checkpoint or data there, too few examples, a reward init...
        raise ConfigError(f"corpus {args.command}: {e}") from None
    print(json.dumps({k: result[k] for k in ("before", "after", "checkpoint", "card") if k in result}, indent=2))
    return 0


def cmd_chat(args) -> int:
    from corpus.trainer.chat import answer_file, converse

    if bool(args.prompts) != bool(args.output):
        print("error: --prompts and --output go together", file=sys.stderr)
        return 2
    try:
        if args.prompts:
            n = answer_file(args.checkpoint, args.prompts, args.output, args.temperature, args.max_tokens, args.seed,
                            args.device)
            print(f"{n} replies in {args.output}", file=sys.stderr)
            return 0
        converse(args.checkpoint, args.temperature, args.max_tokens, args.seed, args.device, args.system)
    except (ValueError, FileNotFoundError) as e:  # no checkpoint there, a reward model, a prompt file's bad line
        print(f"error: corpus chat: {e}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="corpus", description="Raw public text to curated documents, tokenizer, token shards and a GPT.")
    p.add_argument("-v", "--verbose", action="store_true", help="show datatrove's task logs (else in logs/<job>/console.log) and debug messages")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a pipeline YAML file")
    r.add_argument("pipeline")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key, e.g. executor.tasks=8 or steps.warc_reader.paths=[a.warc.gz]")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("crawl", help="run only the crawl: stage of a pipeline (WARC files in RUN/crawl/)")
    c.add_argument("pipeline")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key, e.g. crawl.max_pages=100")
    c.add_argument("--worker", help="run one more crawler process with this name (another machine, shared frontier)")
    c.set_defaults(func=cmd_crawl)

    s = sub.add_parser("steps", help="list the steps, their parameters and defaults")
    s.add_argument("name", nargs="*")
    s.set_defaults(func=cmd_steps)

    i = sub.add_parser("init", help="write a commented starter pipeline.yaml")
    i.add_argument("path", nargs="?", default="pipeline.yaml")
    i.add_argument("--force", action="store_true")
    i.set_defaults(func=cmd_init)

    t = sub.add_parser("tokenizer", help="tokenizer commands")
    tsub = t.add_subparsers(dest="tokenizer_command", required=True)
    tt = tsub.add_parser("train", help="train a lossless BPE tokenizer")
    tt.add_argument("--input", nargs="+", required=True, help="folders, files or globs: jsonl(.gz), parquet, txt")
    tt.add_argument("--vocab-size", type=int, default=8000)
    tt.add_argument("--sample-bytes", type=int, default=500_000_000)
    tt.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    tt.add_argument("--output", required=True)
    tt.set_defaults(func=cmd_tokenizer_train)

    q = sub.add_parser("quality", help="quality classifier commands")
    qsub = q.add_subparsers(dest="quality_command", required=True)
    qt = qsub.add_parser("train", help="train a fastText quality classifier (for the quality_classifier step)")
    qt.add_argument("--positive", nargs="+", required=True, metavar="PATH",
                    help="good documents (any reader format: jsonl, parquet, arrow, text, a run's docs/); "
                         "with --label-key, one or more labelled inputs")
    qt.add_argument("--negative", nargs="+", metavar="PATH", help="junk documents (a run's removed/ works)")
    qt.add_argument("--label-key", help="metadata key holding true (keep) or false (drop), e.g. keep")
    qt.add_argument("--held-out", type=float, default=0.2, help="share held out for the card's figures (by id hash)")
    qt.add_argument("--epoch", type=int, default=25)
    qt.add_argument("--threads", type=int, default=1, help="1 is reproducible; more is faster")
    qt.add_argument("--seed", type=int, default=0)
    qt.add_argument("--output", required=True)
    qt.set_defaults(func=cmd_quality_train)

    sh = sub.add_parser("shards", help="inspect and check token shards")
    shsub = sh.add_subparsers(dest="shards_command", required=True)
    st = shsub.add_parser("stats", help="totals, bytes per token, languages, lengths, quality")
    st.add_argument("folder")
    st.set_defaults(func=cmd_shards_stats)
    ve = shsub.add_parser("verify", help="check every shard against the manifest's sha256, rows and tokens")
    ve.add_argument("folder")
    ve.set_defaults(func=cmd_shards_verify)

    rp = sub.add_parser("report", help="write RUN_DIR/report.html: funnel, languages, lengths, quality, duplicates, "
                                       "tokenizer, shards, losses, ablation, examples")
    rp.add_argument("run_dir")
    rp.set_defaults(func=cmd_report)

    ab = sub.add_parser("ablate", help="train the same GPT on the run's raw and curated documents; compare bits "
                                       "per byte on trusted text")
    ab.add_argument("run_dir")
    ab.add_argument("--eval", required=True, action="append",
                    help="text or documents you trust, in neither training set (repeat for several sets; documents "
                         "with metadata language or lang are also scored per language)")
    ab.add_argument("--match-languages", action="store_true",
                    help="sample the raw arm (and every other arm) down, per language, to the curated arm's token shares")
    ab.add_argument("--eval-key", help="only the --eval documents whose metadata KEY is true (e.g. keep)")
    ab.add_argument("--leave-one-out", action="store_true",
                    help="one more arm per step that dropped documents: curated plus what that step dropped "
                         "(needs save_removed: true); shows what each step is worth, per language")
    ab.add_argument("--arm", action="append", metavar="NAME=PATH",
                    help="one more arm trained on the documents at PATH, compared with raw (repeatable)")
    ab.add_argument("--tokens", type=int, required=True, help="training tokens per model")
    ab.add_argument("--seeds", type=int, default=3)
    ab.add_argument("--set", action="append", metavar="KEY=VALUE", help="model and training settings, e.g. n_layer=2")
    ab.set_defaults(func=cmd_ablate)

    tr = sub.add_parser("train", help="train the GPT on token shards")
    tr.add_argument("config", nargs="?", help="a YAML file with train settings (a pipeline file's train: section works)")
    tr.add_argument("--shards", required=True)
    tr.add_argument("--output", required=True)
    tr.add_argument("--set", action="append", metavar="KEY=VALUE")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="loss and bits per byte of a checkpoint on a text file")
    ev.add_argument("checkpoint")
    ev.add_argument("--text", required=True)
    ev.add_argument("--device", default="auto")
    ev.set_defaults(func=cmd_eval)

    sa = sub.add_parser("sample", help="generate text from a checkpoint")
    sa.add_argument("checkpoint")
    sa.add_argument("--prompt", default="")
    sa.add_argument("--tokens", type=int, default=200)
    sa.add_argument("--temperature", type=float, default=0.8)
    sa.add_argument("--top-k", type=int, default=50)
    sa.add_argument("--seed", type=int, default=1337)
    sa.add_argument("--device", default="auto")
    sa.set_defaults(func=cmd_sample)

    ex = sub.add_parser("export", help="write a checkpoint as a Hugging Face transformers folder (model, tokenizer, card)")
    ex.add_argument("checkpoint")
    ex.add_argument("--output", required=True)
    ex.set_defaults(func=cmd_export)

    for name, what, data in (("sft", "fine-tune a checkpoint on conversations (loss on assistant tokens)", "FILE"),
                             ("reward", "train a reward model (the GPT with a scalar head) on preference pairs",
                              "PAIRS"),
                             ("dpo", "direct preference optimisation of a fine-tuned checkpoint", "PAIRS")):
        pt = sub.add_parser(name, help=what)
        pt.add_argument("--init", required=True, metavar="CHECKPOINT", help="the checkpoint (or run folder) to start from")
        pt.add_argument("--data", metavar=data, help="a .jsonl/.json file or folder in any chat format (OpenAI messages, "
                                                      "ShareGPT, Alpaca, chosen/rejected pairs); or --set task=NAME")
        pt.add_argument("--output", required=True, help="the stage's folder: checkpoint/, card.json, card.md")
        pt.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. max_steps=500 learning_rate=3e-4")
        pt.set_defaults(func=cmd_post_train)

    ch = sub.add_parser("chat", help="a conversation with a fine-tuned checkpoint, or replies to a file of prompts")
    ch.add_argument("checkpoint")
    ch.add_argument("--prompts", help="a .jsonl of records with messages (ending with the user's turn)")
    ch.add_argument("--output", help="the records again, each with its \"reply\"")
    ch.add_argument("--temperature", type=float, default=0.7, help="0: greedy (deterministic)")
    ch.add_argument("--max-tokens", type=int, default=256)
    ch.add_argument("--system", help="a system message to start the conversation with")
    ch.add_argument("--seed", type=int, default=1337)
    ch.add_argument("--device", default="auto")
    ch.set_defaults(func=cmd_chat)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from corpus import console

    console.setup(args.verbose)
    from corpus.config import ConfigError, RunError

    try:
        return args.func(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
