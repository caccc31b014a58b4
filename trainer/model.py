"""A GPT in the style of nanoGPT: pre-norm transformer blocks, causal self-attention through
``scaled_dot_product_attention`` (flash kernels where the device has them), learned position
embeddings or, with ``rope=True``, rotary position embeddings on queries and keys, and the
output head tied to the token embedding. ``GPTConfig`` is the model's shape, stored in checkpoints.
``RewardModel`` is the same network with a scalar head (post-training)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


def rotary_tables(block_size: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, (block_size, head_dim / 2)."""
    freqs = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(block_size, dtype=torch.float32), freqs)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of each head's channels by position-dependent angles."""
    T = x.shape[-2]
    x1, x2 = x.chunk(2, dim=-1)
    c, s = cos[:T].to(x.dtype), sin[:T].to(x.dtype)
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class MLP(nn.Module):
    def __init__(self, n_embd: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.proj = nn.Linear(4 * n_embd, n_embd, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd, bias=False)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln2 = nn.LayerNorm(n_embd, bias=False)
        self.mlp = MLP(n_embd, dropout)

    def forward(self, x, rotary=None):
        x = x + self.attn(self.ln1(x), rotary)
        return x + self.mlp(self.ln2(x))


@dataclass
class GPTConfig:
    """The model's shape: all a checkpoint needs to rebuild it."""

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    rope: bool = False

    @classmethod
    def from_train_config(cls, train: dict, vocab_size: int) -> GPTConfig:
        """The model part of a training configuration (``asdict(TrainConfig)``), which holds no vocabulary."""
        return cls(vocab_size=vocab_size, **{f.name: train[f.name] for f in fields(cls) if f.name in train})


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        c = self.config = config
        self.block_size, self.rope = c.block_size, c.rope
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        if c.rope:
            if (c.n_embd // c.n_head) % 2:
                raise ValueError("rotary embeddings need an even head size (n_embd / n_head)")
            cos, sin = rotary_tables(c.block_size, c.n_embd // c.n_head)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:
            self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c.n_embd, c.n_head, c.dropout) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=False)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # GPT-2's scaled init of residual projections
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding and not self.rope else n

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """The last block's output after the final norm, (B, T, n_embd), for token ids ``idx`` (B, T)."""
        T = idx.shape[1]
        if T > self.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.block_size}")
        if self.rope:
            x, rotary = self.drop(self.wte(idx)), (self.rope_cos, self.rope_sin)  # (B, T, C)
        else:
            x, rotary = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))), None  # (B, T, C)
        for block in self.blocks:
            x = block(x, rotary)  # (B, T, C)
        return self.ln_f(x)  # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, ignore_index: int = -100):
        """Logits (B, T, vocab) and the mean cross-entropy over the targets (B, T) that are not
        ``ignore_index``; without targets, the logits of the last position only (B, 1, vocab)."""
        x = self.hidden(idx)  # (B, T, C)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None  # (B, 1, vocab)
        logits = self.lm_head(x)  # (B, T, vocab)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=ignore_index)
        return logits, loss

    def token_logprobs(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) at every position, (B, T), in float32."""
        logits = self.lm_head(self.hidden(idx)).float()  # (B, T, vocab)
        return torch.gather(F.log_softmax(logits, dim=-1), 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 stop_id: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.block_size:])
            logits = logits[:, -1, :] / max(temperature, 1e-5)
            if top_k:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits.float(), dim=-1), 1, generator=generator)
            idx = torch.cat((idx, nxt), dim=1)
            if stop_id is not None and int(nxt[0, 0]) == stop_id:
                break
        return idx


class RewardModel(nn.Module):
    """The GPT with a scalar head: the reward of a sequence is a linear read-out of the final
    hidden state at its last token (the ``<|end|>`` closing the reply). ``config`` is the backbone's."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.gpt = GPT(config)
        self.head = nn.Linear(config.n_embd, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def forward(self, idx: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) of the rows of ``idx`` (B, T), each read at its position ``last`` (B,)."""
        x = self.gpt.hidden(idx)  # (B, T, C)
        at = x[torch.arange(idx.shape[0], device=idx.device), last]  # (B, C)
        return self.head(at).squeeze(-1).float()  # (B,)
