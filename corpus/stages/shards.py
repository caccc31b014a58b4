"""The ``shards:`` stage: the curated documents encoded with the run's tokenizer into Arrow
token shards in ``shards/`` (``corpus.tokenizer.encode``), encoded as tasks of the run's executor."""

from __future__ import annotations

from corpus.core.registry import RunContext, register_stage
from corpus.tokenizer.encode import ShardsConfig, write_shards


@register_stage("shards", ShardsConfig, order=20, needs=("tokenizer",), reads_documents=True)
def run(ctx: RunContext, cfg: ShardsConfig) -> dict:
    """Arrow token shards (train and val by document-id hash) with a checksummed manifest."""
    return write_shards(ctx.docs, ctx.run.tokenizer_model, ctx.run.shards, cfg,
                        pipeline=ctx.pipeline, executor=ctx.executor)
