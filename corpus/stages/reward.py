"""The ``reward:`` stage: a reward model (the GPT with a scalar head) trained on preference pairs,
in ``reward/`` (``corpus.trainer.posttrain``)."""

from __future__ import annotations

from corpus.core.registry import RunContext, register_stage
from corpus.stages.sft import run_post_training
from corpus.trainer.config import RewardConfig


@register_stage("reward", RewardConfig, order=41)
def run(ctx: RunContext, cfg: RewardConfig) -> dict:
    """A reward model from preference pairs, starting from the trained GPT: held-out pairwise accuracy."""
    return run_post_training(ctx, "reward", cfg, "train")
