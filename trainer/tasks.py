"""Instruction tasks that code can check: examples for fine-tuning, preference pairs for a reward
model and DPO, and a judge that scores any reply. A base model cannot do them (it has never seen
the instruction); after fine-tuning, exact-match accuracy and a judge's preferences show what each
post-training stage changed.

``reverse_words``: "Reverse the order of these words: crown sword night" → "night sword crown",
with 2 to 5 words from a list of 48 common English words; a wrong answer for a preference pair is
the words in their given order, a reply with one word left out, or one with two words swapped.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

WORDS = ("king queen lord lady duke prince knight crown sword heart blood night day time world eyes hand head "
         "soul life love death heaven earth honour friend father mother brother sister grace peace war fool ghost "
         "storm sea fire stone gold bread wine rose moon star river tower horse letter").split()


@dataclass(frozen=True)
class ReverseWords:
    name: str = "reverse_words"
    min_words: int = 2
    max_words: int = 5
    instruction: str = "Reverse the order of these words: "

    def example(self, rng: random.Random) -> tuple[list[dict], str]:
        """A prompt (messages ending with the user's turn) and its correct answer."""
        words = rng.sample(WORDS, rng.randint(self.min_words, self.max_words))
        return [{"role": "user", "content": self.instruction + " ".join(words)}], " ".join(reversed(words))

    def wrong(self, rng: random.Random, prompt: list[dict], answer: str) -> str:
        """A plausible wrong answer: the given order, a word left out, or two words swapped."""
        words = answer.split()
        kind = rng.choice(("given_order", "dropped", "swapped"))
        if kind == "given_order":
            return " ".join(reversed(words))
        if kind == "dropped":
            del words[rng.randrange(len(words))]
            return " ".join(words)
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
        return " ".join(words)

    def answer(self, prompt: list[dict]) -> str:
        return " ".join(reversed(prompt[-1]["content"].removeprefix(self.instruction).split()))

    def score(self, prompt: list[dict], reply: str) -> float:
        """1 for the exact answer; otherwise the share of positions right, less for a wrong length."""
        want, got = self.answer(prompt).split(), re.sub(r"\s+", " ", reply).strip().split()
        right = sum(a == b for a, b in zip(want, got))
        return right / max(len(want), len(got))


TASKS = {t.name: t for t in (ReverseWords(),)}


def task(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: one of {', '.join(TASKS)}")
    return TASKS[name]


def make_examples(name: str, n: int, seed: int, pairs: bool = False) -> list[dict]:
    """``n`` records of the task: conversations (OpenAI ``messages``) or, with ``pairs``,
    preference pairs (``messages`` the prompt, ``chosen`` the right answer, ``rejected`` a wrong
    one). No prompt occurs twice; the stage that trains on them holds out a part by a hash of the
    prompt, so a prompt held out in one stage is held out in every other."""
    t, rng = task(name), random.Random(f"{name}:{seed}:{pairs}")
    records, seen = [], set()
    for i in range(n):
        prompt, answer = t.example(rng)
        for _ in range(1000):  # each prompt once
            if prompt[-1]["content"] not in seen:
                break
            prompt, answer = t.example(rng)
        seen.add(prompt[-1]["content"])
        record = {"id": f"{name}-{'pair' if pairs else 'sft'}-{seed}-{i}"}
        if pairs:
            record |= {"messages": prompt, "chosen": answer, "rejected": t.wrong(rng, prompt, answer)}
        else:
            record |= {"messages": prompt + [{"role": "assistant", "content": answer}]}
        records.append(record)
    return records
