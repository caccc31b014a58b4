"""The ``tokenizer:`` stage: a lossless BPE tokenizer trained on the run's curated documents,
written to ``tokenizer/`` (``corpus.tokenizer.train``)."""

from __future__ import annotations

from corpus.core.registry import RunContext, register_stage
from corpus.tokenizer.train import TokenizerConfig, train_tokenizer


@register_stage("tokenizer", TokenizerConfig, order=10, reads_documents=True)
def run(ctx: RunContext, cfg: TokenizerConfig) -> dict:
    """A sentencepiece BPE tokenizer (byte fallback, lossless) trained on the curated documents."""
    return train_tokenizer(ctx.docs, ctx.run.tokenizer, cfg)
