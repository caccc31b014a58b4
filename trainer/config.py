"""Training configuration: the ``train:`` section of a pipeline and of ``corpus train CONFIG.yaml``.
Defaults train a tiny model in about a minute on a laptop CPU."""

from __future__ import annotations

from dataclasses import dataclass

from corpus.core.registry import require_at_least


@dataclass
class TrainConfig:
    # model
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128
    dropout: float = 0.0
    rope: bool = False  # rotary position embeddings instead of learned ones
    # optimisation
    batch_size: int = 16
    grad_accum: int = 1
    max_steps: int = 500
    learning_rate: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    # evaluation, logging, checkpoints
    eval_interval: int = 100
    eval_batches: int = 20
    log_interval: int = 10
    checkpoint_interval: int = 0  # steps between checkpoints; 0: at each evaluation
    # runtime
    device: str = "auto"  # auto, cpu, cuda, mps
    dtype: str = "auto"  # auto (bf16 on cuda, fp32 elsewhere), float32, bfloat16
    compile: bool = False
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    seed: int = 1337
    # sample printed at the end
    sample_tokens: int = 200
    sample_prompt: str = ""
    temperature: float = 0.8
    top_k: int = 50

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        require_at_least(self, 1, "n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum", "max_steps",
                         "eval_batches", "eval_interval", "log_interval")
        require_at_least(self, 0, "warmup_steps", "checkpoint_interval", "threads", "sample_tokens", "top_k",
                         "weight_decay", "grad_clip", "min_lr")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be above 0")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("beta1 and beta2 must be in [0, 1)")
        if not self.temperature > 0:
            raise ValueError("temperature must be above 0")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ValueError("device must be auto, cpu, cuda, cuda:N or mps")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError("dtype must be auto, float32, bfloat16 or float16")
