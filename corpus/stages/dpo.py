"""The ``dpo:`` stage: direct preference optimisation of the fine-tuned model against a frozen copy
of it, in ``dpo/`` (``corpus.trainer.posttrain``)."""

from __future__ import annotations

from corpus.core.registry import RunContext, register_stage
from corpus.stages.sft import run_post_training
from corpus.trainer.config import DPOConfig


@register_stage("dpo", DPOConfig, order=42)
def run(ctx: RunContext, cfg: DPOConfig) -> dict:
    """DPO from the sft: stage's model: held-out reward margins, preference accuracy, judged win rate."""
    return run_post_training(ctx, "dpo", cfg, "sft")
