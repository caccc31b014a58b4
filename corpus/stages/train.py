"""The ``train:`` stage: the bundled GPT trained on the run's shards, in ``train/``
(``corpus.trainer``)."""

from __future__ import annotations

from corpus.core.registry import RunContext, register_stage
from corpus.trainer.config import TrainConfig


@register_stage("train", TrainConfig, order=30, needs=("shards",))
def run(ctx: RunContext, cfg: TrainConfig) -> dict:
    """A GPT trained on the shards: validation loss and bits per byte, checkpoints, a sample."""
    from corpus.trainer.train import train  # PyTorch loads only when a run trains

    return train(ctx.run.shards, ctx.run.train, cfg)
