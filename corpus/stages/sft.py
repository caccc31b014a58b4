"""The ``sft:`` stage: the trained GPT fine-tuned on conversations, in ``sft/``
(``corpus.trainer.posttrain``). Also the runner the ``reward:`` and ``dpo:`` stages share."""

from __future__ import annotations

from dataclasses import replace

from corpus.core.io import named_where_kept, staged
from corpus.core.registry import RunContext, register_stage
from corpus.trainer.config import PostTrainConfig, SFTConfig


def run_post_training(ctx: RunContext, stage: str, cfg: PostTrainConfig, default_init: str) -> dict:
    """``stage`` from ``cfg.init``, or else from the checkpoint of this run's ``default_init`` stage,
    in the stage's folder of the run (a local mirror of it for a run on object storage)."""
    from corpus.trainer.posttrain import post_train

    if not cfg.init:
        folder = ctx.run.train if default_init == "train" else ctx.run.post_training(default_init)
        if default_init not in ctx.pipeline and not (folder / "checkpoint").exists():
            raise ValueError(f"{stage}: set init: (a checkpoint), or run a {default_init}: stage before it")
        cfg = replace(cfg, init=str(folder))
    with staged(ctx.run.post_training(stage)) as local:
        result = post_train(stage, local, cfg)
    if ctx.run.remote:
        result = named_where_kept(result, local, ctx.run.post_training(stage))
    return result


@register_stage("sft", SFTConfig, order=40)
def run(ctx: RunContext, cfg: SFTConfig) -> dict:
    """Supervised fine-tuning on conversations (loss on the assistant's tokens): held-out assistant
    loss and exact-match accuracy before and after, a card."""
    return run_post_training(ctx, "sft", cfg, "train")
