"""Training configurations: the ``train:`` section of a pipeline and of ``corpus train CONFIG.yaml``,
and the post-training sections (``sft:``, ``reward:``, ``dpo:``) and commands. Defaults train a
tiny model in about a minute on a laptop CPU. No torch here: a run that does not train never loads it."""

from __future__ import annotations

from dataclasses import dataclass

from corpus.core.registry import require_at_least


@dataclass
class Optimisation:
    """What every training loop shares: AdamW, warmup then cosine decay, clipping, evaluation and
    checkpoint intervals, where it runs."""

    batch_size: int = 16
    max_steps: int = 500
    learning_rate: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 100
    checkpoint_interval: int = 0  # steps between checkpoints; 0: at each evaluation
    device: str = "auto"  # auto, cpu, cuda, mps
    dtype: str = "auto"  # auto (bf16 on cuda, fp32 elsewhere), float32, bfloat16
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    seed: int = 1337

    def __post_init__(self):
        require_at_least(self, 1, "batch_size", "max_steps", "eval_interval")
        require_at_least(self, 0, "warmup_steps", "checkpoint_interval", "threads", "weight_decay", "grad_clip",
                         "min_lr")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be above 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("beta1 and beta2 must be in [0, 1)")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ValueError("device must be auto, cpu, cuda, cuda:N or mps")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError("dtype must be auto, float32, bfloat16 or float16")


@dataclass
class TrainConfig(Optimisation):
    # model
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128
    dropout: float = 0.0
    rope: bool = False  # rotary position embeddings instead of learned ones
    grad_accum: int = 1
    # evaluation, logging
    eval_batches: int = 20
    log_interval: int = 10
    compile: bool = False
    # sample printed at the end
    sample_tokens: int = 200
    sample_prompt: str = ""
    temperature: float = 0.8
    top_k: int = 50

    def __post_init__(self):
        super().__post_init__()
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        require_at_least(self, 1, "n_layer", "n_head", "n_embd", "block_size", "grad_accum", "eval_batches",
                         "log_interval")
        require_at_least(self, 0, "sample_tokens", "top_k")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if not self.temperature > 0:
            raise ValueError("temperature must be above 0")


@dataclass
class PostTrainConfig(Optimisation):
    """A post-training stage (``corpus.trainer.posttrain``)."""

    init: str = ""  # the checkpoint to start from; in a pipeline: train's (sft, reward) or sft's (dpo)
    data: str = ""  # conversations or preference pairs: a .jsonl/.json file or a folder of them, any chat format
    task: str = ""  # a checkable task (corpus.trainer.tasks): its examples when data is empty, and judged figures
    examples: int = 2000  # how many examples a task generates
    heldout_fraction: float = 0.1  # of the examples, chosen by id: never trained on
    max_heldout: int = 200  # of those, evaluated (the rest is neither evaluated nor trained on)
    max_turn_chars: int = 20000
    max_steps: int = 300
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.0
    judged: int = 100  # held-out prompts answered (greedy) and judged before and after; 0: none
    max_new_tokens: int = 64

    def __post_init__(self):
        super().__post_init__()
        require_at_least(self, 1, "examples", "max_new_tokens", "max_turn_chars", "max_heldout")
        require_at_least(self, 0, "judged")
        if not 0 < self.heldout_fraction < 0.5:
            raise ValueError("heldout_fraction must be in (0, 0.5)")
        if self.task:  # a misspelt task fails when the pipeline is read, not after pretraining
            from corpus.trainer.tasks import task

            task(self.task)


@dataclass
class SFTConfig(PostTrainConfig):
    pass


@dataclass
class RewardConfig(PostTrainConfig):
    learning_rate: float = 3e-4


@dataclass
class DPOConfig(PostTrainConfig):
    beta: float = 0.1  # strength of the pull towards the reference model
    sft_weight: float = 0.0  # plus this times the chosen replies' NLL per token (TRL's rpo_alpha)
    learning_rate: float = 3e-4

    def __post_init__(self):
        super().__post_init__()
        if not self.beta > 0:
            raise ValueError("beta must be above 0")
        require_at_least(self, 0, "sft_weight")
