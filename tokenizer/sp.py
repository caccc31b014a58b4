"""A lossless wrapper around a trained sentencepiece model.

sentencepiece writes spaces as U+2581 (▁) internally, so a literal ▁ in the text would come back
as a space; and the tokenizer reserves the chat template's control tokens (``<|user|>``,
``<|end|>``, ...), which sentencepiece would match inside any text. ``encode`` therefore emits a
literal ▁ or control-token string as its UTF-8 byte pieces, which decode to the characters
themselves: ``decode(encode(text)) == text`` for every string, and text never yields a control
token. Only ``special_id`` (the chat template) gives them.
"""

from __future__ import annotations

import re
from pathlib import Path

from corpus.core.chat import CHAT_TOKENS

META = "\u2581"


class Tokenizer:
    def __init__(self, model_file: str | Path):
        import sentencepiece as spm

        self.path = str(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=self.path)
        unk = self.sp.unk_id()
        self.special = {t: i for t in CHAT_TOKENS if (i := self.sp.piece_to_id(t)) != unk}
        self._escaped: dict[str, list[int]] = {}  # strings spelled out in byte pieces
        for s in (META, *self.special):
            ids = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in s.encode("utf-8")]
            if unk not in ids:  # else a model without byte fallback: nothing to do better
                self._escaped[s] = ids
        self._split = re.compile("(" + "|".join(map(re.escape, self._escaped)) + ")") if self._escaped else None

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    def special_id(self, token: str) -> int:
        """The id of a reserved control token (``<|user|>``, ``<|end|>``, ...)."""
        if token not in self.special:
            raise ValueError(f"{self.path} reserves no {token} token (a tokenizer trained before chat tokens were "
                             "reserved): train the tokenizer, and a model with it, again")
        return self.special[token]

    def _needs_escape(self, text: str) -> bool:
        return META in text or "<|" in text

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str], num_threads: int = -1) -> list[list[int]]:
        if self._split is None or not any(self._needs_escape(t) for t in texts):
            return self.sp.encode(texts, num_threads=num_threads)
        out = []
        for t in texts:
            if not self._needs_escape(t):
                out.append(self.sp.encode(t))
                continue
            ids: list[int] = []
            for k, part in enumerate(self._split.split(t)):
                if k % 2:
                    ids += self._escaped[part]
                elif part:
                    ids += self.sp.encode(part)
            out.append(ids)
        return out

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids])
