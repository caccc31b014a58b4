"""A lossless wrapper around a trained sentencepiece model.

sentencepiece writes spaces as U+2581 (▁) internally, so a literal ▁ in the text would come back
as a space. ``encode`` therefore emits a literal ▁ as its three UTF-8 byte pieces, which decode
to the character itself: ``decode(encode(text)) == text`` for every string.
"""

from __future__ import annotations

from pathlib import Path

META = "\u2581"


class Tokenizer:
    def __init__(self, model_file: str | Path):
        import sentencepiece as spm

        self.path = str(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=self.path)
        self._meta_ids = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in META.encode("utf-8")]
        if any(i == self.sp.unk_id() for i in self._meta_ids):
            self._meta_ids = None  # a model without byte fallback: nothing to do better

    @property
    def vocab_size(self) -> int:
        return self.sp.vocab_size()

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str], num_threads: int = -1) -> list[list[int]]:
        if self._meta_ids is None or not any(META in t for t in texts):
            return self.sp.encode(texts, num_threads=num_threads)
        out = []
        for t in texts:
            if META not in t:
                out.append(self.sp.encode(t))
                continue
            ids: list[int] = []
            for k, part in enumerate(t.split(META)):
                if k:
                    ids += self._meta_ids
                if part:
                    ids += self.sp.encode(part)
            out.append(ids)
        return out

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids])
