"""The ``train:`` stage: the bundled GPT trained on the run's shards, in ``train/``
(``corpus.trainer``)."""

from __future__ import annotations


from corpus.core.io import named_where_kept, staged
from corpus.core.registry import RunContext, register_stage
from corpus.trainer.config import TrainConfig


@register_stage("train", TrainConfig, order=30, needs=("shards",))
def run(ctx: RunContext, cfg: TrainConfig) -> dict:
    """A GPT trained on the shards: validation loss and bits per byte, checkpoints, a sample."""
    from corpus.trainer.train import train  # PyTorch loads only when a run trains

    # a run folder on object storage: the shards are fetched into a local cache (checked against
    # their manifest) and the model trains in a local mirror of train/, uploaded when it ends
    with staged(ctx.run.train) as local:
        result = train(str(ctx.run.shards) if ctx.run.remote else ctx.run.shards, local, cfg)
    if ctx.run.remote:  # name the files where they are kept, not the mirror
        result = named_where_kept(result, local, ctx.run.train)
    return result
