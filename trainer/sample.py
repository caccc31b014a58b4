"""Sampling text from a model: the sample printed at the end of training, and ``corpus sample``."""

from __future__ import annotations

from pathlib import Path

import torch

from corpus.trainer.config import TrainConfig
from corpus.trainer.model import GPT


def sample_text(model: GPT, tok, prompt: str, tokens: int, temperature: float, top_k: int, seed: int, device: str) -> str:
    """Continue ``prompt`` (or start a document, after an eos) with ``tokens`` sampled tokens."""
    ids = tok.encode(prompt) if prompt else [tok.eos_id]
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    out = model.generate(torch.tensor([ids], dtype=torch.long, device=device), tokens, temperature, top_k, generator=gen)
    model.train(was_training)
    return prompt + tok.decode([t for t in out[0].tolist()[len(ids):] if t != tok.eos_id])


def generate_sample(model: GPT, tokenizer_path: str | Path, cfg: TrainConfig, device: str) -> str:
    """The end-of-training sample, as the configuration's ``sample_*``, ``temperature`` and ``top_k`` ask."""
    from corpus.tokenizer.sp import Tokenizer

    return sample_text(model, Tokenizer(tokenizer_path), cfg.sample_prompt, cfg.sample_tokens, cfg.temperature,
                       cfg.top_k, cfg.seed, device)
