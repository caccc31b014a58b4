"""A document quality score in [0, 1], stored in ``metadata.quality_score``.

The default scorer is heuristic and language-aware: the mean of five signals that the Gopher,
C4 and FineWeb rules use as hard cut-offs, here turned into soft scores.

- ``punctuation``: share of lines that end a sentence (saturates at 50 %)
- ``letters``: share of words that contain a letter
- ``uniqueness``: 1 - share of characters in repeated lines
- ``length``: log-scaled word count (1.0 from 1,000 words up)
- ``stop_words``: density of the language's stop words (FineWeb-2's list per language; saturates
  at 10 %; skipped when the language has no list)

With ``min_score`` set, documents below it are dropped (reason ``low_quality_score``).
"""

from __future__ import annotations

import math

from datatrove.data import Document

from corpus.core.funnel import Filter
from corpus.core.registry import register
from corpus.filters.heuristics import TERMINAL_PUNCT, repeats, split_words, stop_words, word_mode


def heuristic_quality(doc: Document) -> tuple[float, dict[str, float]]:
    text = doc.text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    unspaced, chinese = word_mode(doc)
    words = split_words(text, unspaced, chinese)
    if not lines or not words:
        return 0.0, {}
    parts = {}
    parts["punctuation"] = min(1.0, sum(line.endswith(TERMINAL_PUNCT) for line in lines) / len(lines) / 0.5)
    parts["letters"] = sum(any(c.isalpha() for c in w) for w in words) / len(words)
    parts["uniqueness"] = 1.0 - repeats(lines)[1] / max(1, sum(map(len, lines)))
    parts["length"] = min(1.0, math.log10(len(words) + 1) / 3)
    stop = stop_words(doc.metadata.get("language", "" if unspaced else "en"))
    if stop:
        parts["stop_words"] = min(1.0, sum(w.lower() in stop for w in words) / len(words) / 0.1)
    return sum(parts.values()) / len(parts), parts


@register("quality_score")
class QualityScore(Filter):
    """Scores each document (metadata.quality_score, 0 to 1) and, with ``min_score``, drops those below."""

    name = "⭐ quality_score"

    def __init__(self, min_score: float | None = None):
        super().__init__()
        if min_score is not None and not 0 <= min_score <= 1:
            raise ValueError("min_score must be between 0 and 1")
        self.min_score = min_score

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        score, _ = heuristic_quality(doc)
        doc.metadata["quality_score"] = round(score, 4)
        if self.min_score is not None and score < self.min_score:
            return False, "low_quality_score"
        return True
