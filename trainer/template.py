"""The chat template: a conversation as token ids, with which targets are trained, and replies
generated from a model.

Each turn is ``<|role|>`` ``\\n`` content ``<|end|>`` ``\\n``: the token sequence of
``corpus.core.chat.render``, with the control tokens the tokenizer reserves (so a base model needs
no new embeddings). A model learns the content of assistant turns and the ``<|end|>`` that closes
them; everything else is context. To answer, the model continues ``... <|assistant|> \\n`` until it
writes ``<|end|>``.
"""

from __future__ import annotations

import torch

from corpus.core.chat import TOKENS


class ChatTemplate:
    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.role = {r: tokenizer.special_id(t) for r, t in TOKENS.items() if r != "end"}
        self.end = tokenizer.special_id(TOKENS["end"])
        self.newline = tokenizer.encode("\n")

    def encode(self, messages: list[dict], train: str = "assistant") -> tuple[list[int], list[bool]]:
        """Token ids of the conversation and, per id, whether it is a training target: the content
        and ``<|end|>`` of every assistant turn (``train="assistant"``) or of the last one only
        (``"last"``: the reply that a preference pair compares)."""
        ids, target = [], []
        last = len(messages) - 1
        for k, m in enumerate(messages):
            trained = m["role"] == "assistant" and (train == "assistant" or k == last)
            head, body = [self.role[m["role"]], *self.newline], [*self.tok.encode(m["content"]), self.end]
            ids += head + body + self.newline
            target += [False] * len(head) + [trained] * len(body) + [False] * len(self.newline)
        return ids, target

    def prompt(self, messages: list[dict]) -> list[int]:
        """The ids a reply is generated after: the conversation, then ``<|assistant|>`` ``\\n``."""
        return self.encode(messages)[0] + [self.role["assistant"], *self.newline]


@torch.no_grad()
def generate_reply(model, template: ChatTemplate, messages: list[dict], max_new_tokens: int = 128,
                   temperature: float = 0.0, top_k: int = 50, seed: int = 1337, device: str = "cpu") -> str:
    """The model's answer to ``messages`` (which end with a user turn): sampled at ``temperature``,
    or greedy at 0; it ends at ``<|end|>`` or after ``max_new_tokens``."""
    ids = template.prompt(messages)[-model.block_size:]
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    out = model.generate(torch.tensor([ids], dtype=torch.long, device=device), max_new_tokens,
                         temperature if temperature > 0 else 1.0, 1 if temperature <= 0 else top_k,
                         stop_id=template.end, generator=gen)
    model.train(was_training)
    reply = out[0].tolist()[len(ids):]
    if reply and reply[-1] == template.end:
        reply = reply[:-1]
    return template.tok.decode(reply)
