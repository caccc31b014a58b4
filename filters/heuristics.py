"""Heuristic quality filters from Gopher (Rae et al. 2021), C4 (Raffel et al. 2020) and FineWeb
(Penedo et al. 2024), with datatrove's default thresholds, made aware of the document's language.

datatrove's own versions split words with NLTK or spaCy models that must be downloaded at run
time, and count a Chinese page as a handful of "words". Here words are split by script: runs of
letters for languages written with spaces, one word per character for Chinese, Japanese, Thai and
others written without (``metadata.language`` from language_id decides; without it, the share of
such characters in the text does). Rules that make no sense for a script (mean word length) are
skipped for it.

Thresholds are per language (``per_language``, on by default): for a document whose
``metadata.language`` is one of the 262 that language ID emits (lid.176's 176, heliport's 220,
lingua's second opinion), the rules use FineWeb-2's published values for that language (the
nearest language's for 7 it lacks) (``data/fineweb2/<code>.yml``: stop words inferred from Wikipedia,
word-length bounds, line-punctuation and newline ratios, repetition limits; English keeps
FineWeb's). A parameter you set to something other than its default applies to every language.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import regex
import yaml

from datatrove.data import Document
from datatrove.pipeline.filters.gopher_repetition_filter import (
    find_all_duplicate,
    find_duplicates,
    find_top_duplicate,
    get_n_grams,
)

from corpus.core.funnel import Filter
from corpus.core.registry import register

UNSPACED = {"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue", "gan"}
_UNSPACED_CHAR = r"\p{Han}|\p{Hiragana}|\p{Katakana}|\p{Thai}|\p{Lao}|\p{Khmer}|\p{Myanmar}|\p{Tibetan}"
_WORDS_UNSPACED = regex.compile(rf"(?:{_UNSPACED_CHAR})|[^\s\p{{P}}\p{{S}}\p{{Han}}\p{{Hiragana}}\p{{Katakana}}\p{{Thai}}]+")
_UNSPACED_RE = regex.compile(_UNSPACED_CHAR)
TERMINAL_PUNCT = tuple(".!?…\"'”’。！？」』）)")
_SENTENCE_END = regex.compile(r"[.!?…。！？]+(?:\s|$)|[。！？]")

# languages whose FineWeb-2 stop words are particles written onto words, never words alone
AGGLUTINATIVE_PARTICLES = {"ko"}

STOP_WORDS = {
    "en": {"the", "be", "to", "of", "and", "that", "have", "with"},
    "zh": set("的了是在我有和就不人都一这也"),
    "ja": set("のにはをたがでてとし"),
    "ru": {"и", "в", "не", "на", "я", "что", "он", "с", "как", "это"},
    "de": {"der", "die", "und", "in", "den", "von", "zu", "das", "mit", "ist"},
    "fr": {"de", "la", "le", "et", "les", "des", "en", "un", "du", "une"},
    "es": {"de", "la", "que", "el", "en", "y", "a", "los", "se", "del"},
    "it": {"di", "e", "il", "la", "che", "in", "a", "per", "un", "del"},
    "pt": {"de", "a", "o", "que", "e", "do", "da", "em", "um", "para"},
    "nl": {"de", "en", "van", "het", "een", "in", "is", "dat", "op", "te"},
    "pl": {"i", "w", "na", "z", "się", "nie", "do", "to", "że", "jest"},
}


THRESHOLDS = Path(__file__).parent / "data" / "fineweb2"
@functools.lru_cache(maxsize=None)
def language_thresholds(lang: str | None) -> dict | None:
    """FineWeb-2's filter values for a lid.176 language code (``data/fineweb2/<code>.yml``), or
    None; each file is read once per process."""
    if not lang or not regex.fullmatch(r"[a-z]{2,3}", lang):
        return None
    path = THRESHOLDS / f"{lang}.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


@functools.lru_cache(maxsize=None)
def stop_words(lang: str | None) -> frozenset[str]:
    """The stop words of a language: FineWeb-2's list when it has one, else the small built-in
    list. Built once per language and process (it is asked for every document)."""
    table = language_thresholds(lang)
    if table and table.get("stopwords"):
        return frozenset(str(w).lower() for w in table["stopwords"])
    return frozenset(STOP_WORDS.get(lang or "", ()))


class PerLanguage:
    """Mixin for a rule whose thresholds follow the document's language. ``TABLE`` maps a
    parameter to how it is read from a language's table (``language_thresholds``)."""

    TABLE: dict = {}

    def remember_thresholds(self, params: dict, per_language: bool) -> None:
        defaults = inspect.signature(type(self).__init__).parameters
        self.per_language = per_language
        self._fixed = {k: params[k] for k in self.TABLE}
        self._explicit = {k for k in self.TABLE if params[k] != defaults[k].default}
        self._by_language: dict[str | None, dict] = {}

    def thresholds(self, doc: Document) -> dict:
        lang = doc.metadata.get("language") if self.per_language else None
        if lang not in self._by_language:
            values = dict(self._fixed)
            table = language_thresholds(lang)
            if table:
                values.update({k: read(table) for k, read in self.TABLE.items() if k not in self._explicit})
            self._by_language[lang] = values
        return self._by_language[lang]


def _pairs(key: str):
    return lambda table: {int(n): float(v) for n, v in table[key]}


def _off_unless(key: str):
    """FineWeb-2 turns off the rules it has no value for (None); English keeps FineWeb's."""
    return lambda table: table.get(key)


def is_unspaced(doc: Document) -> bool:
    lang = doc.metadata.get("language")
    if lang:
        return lang in UNSPACED
    sample = doc.text[:5000]
    letters = sum(1 for c in sample if c.isalpha())
    return bool(letters) and len(_UNSPACED_RE.findall(sample)) / letters > 0.3


CHINESE = {"zh", "yue", "wuu", "gan"}
_KANA = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
_WORD_CHAR = regex.compile(r"[\p{L}\p{N}]")


def split_words(text: str, unspaced: bool, chinese: bool = False) -> list[str]:
    """Words: whitespace-separated for spaced scripts; for Chinese, jieba's segmentation (rjieba,
    its Rust port: dictionary words, punctuation left out); for other unspaced scripts (Japanese,
    Thai, ...), one word per character."""
    if chinese:
        import rjieba

        return [w for w in rjieba.cut(text) if _WORD_CHAR.search(w)]
    if unspaced:
        return _WORDS_UNSPACED.findall(text)
    return text.split()


def word_mode(doc: Document) -> tuple[bool, bool]:
    """(unspaced, chinese): how a document's words are split (``split_words``'s flags)."""
    unspaced = is_unspaced(doc)
    lang = doc.metadata.get("language")
    return unspaced, unspaced and (lang in CHINESE if lang else not _KANA.search(doc.text[:2000]))


def doc_words(doc: Document, text: str | None = None) -> list[str]:
    """The words of a document (or of ``text``, a part of it), split as its language needs."""
    return split_words(doc.text if text is None else text, *word_mode(doc))


@register("gopher_quality")
class GopherQuality(PerLanguage, Filter):
    """Gopher's quality rules: document length in words, mean word length (spaced scripts only),
    symbol/word ratio, bullet and ellipsis lines, share of words with a letter, stop words.
    Per language: word-length bounds, share of words with a letter, stop words (FineWeb-2)."""

    name = "🥇 gopher_quality"
    TABLE = {"min_avg_word_length": lambda t: t["min_avg_word_length"],
             "max_avg_word_length": lambda t: t["max_avg_word_length"],
             "min_alpha_words_ratio": lambda t: round(1 - t["max_non_alpha_words_ratio"], 4)}

    def __init__(
        self,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100_000,
        min_avg_word_length: float | None = 3,
        max_avg_word_length: float | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        min_alpha_words_ratio: float | None = 0.8,
        min_stop_words: int | None = 2,
        per_language: bool = True,
    ):
        super().__init__()
        self.remember_thresholds(locals(), per_language)
        self.min_doc_words, self.max_doc_words = min_doc_words, max_doc_words
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.min_stop_words = min_stop_words

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        unspaced, chinese = word_mode(doc)
        words = split_words(doc.text, unspaced, chinese)
        t = self.thresholds(doc)
        n = len(words)
        if self.min_doc_words is not None and n < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words is not None and n > self.max_doc_words:
            return False, "gopher_long_doc"
        if not unspaced:
            mean = sum(len(w) for w in words) / n if n else 0
            if t["min_avg_word_length"] is not None and mean < t["min_avg_word_length"]:
                return False, "gopher_below_avg_word_length"
            if t["max_avg_word_length"] is not None and mean > t["max_avg_word_length"]:
                return False, "gopher_above_avg_word_length"
        text = doc.text
        symbols = text.count("#") + text.count("...") + text.count("…")
        if self.max_symbol_word_ratio is not None and n and symbols / n > self.max_symbol_word_ratio:
            return False, "gopher_symbol_word_ratio"
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            bullets = sum(1 for line in lines if line.lstrip().startswith(("•", "●", "○", "-", "*", "·", "▪")))
            if self.max_bullet_lines_ratio is not None and bullets / len(lines) > self.max_bullet_lines_ratio:
                return False, "gopher_bullet_lines"
            ellipsis = sum(1 for line in lines if line.rstrip().endswith(("...", "…")))
            if self.max_ellipsis_lines_ratio is not None and ellipsis / len(lines) > self.max_ellipsis_lines_ratio:
                return False, "gopher_ellipsis_lines"
        if t["min_alpha_words_ratio"] is not None and n:
            alpha = sum(1 for w in words if any(c.isalpha() for c in w))
            if alpha / n < t["min_alpha_words_ratio"]:
                return False, "gopher_alpha_words"
        lang = doc.metadata.get("language", "" if unspaced else "en")
        stop = stop_words(lang) if self.per_language else STOP_WORDS.get(lang, set())
        if self.min_stop_words is not None and stop:
            if (unspaced and not chinese) or lang in AGGLUTINATIVE_PARTICLES:
                # words are characters here (a stop word may be longer), or, in Korean, the stop
                # words are particles and endings written onto the word before them (했다, 학교에서)
                found = sum(text.count(w) for w in stop)
            else:
                found = 0
                for w in words:
                    if w.lower() in stop:
                        found += 1
                        if found >= self.min_stop_words:
                            break
            if found < self.min_stop_words:
                return False, "gopher_stop_words"
        return True


def repeats(elements: list[str]) -> tuple[int, int]:
    """How many elements repeat an earlier one, and their characters (datatrove's Gopher count)."""
    return find_duplicates(elements)


@register("gopher_repetition")
class GopherRepetition(PerLanguage, Filter):
    """Gopher's repetition rules: duplicated lines and paragraphs (by count and by characters),
    the most frequent 2-4-grams, and characters in repeated 5-10-grams (datatrove's counts). Per language
    (FineWeb-2): duplicated-line share and n-gram limits; the paragraph and line-character
    rules are off, as in FineWeb-2."""

    name = "👯 gopher_repetition"
    TABLE = {"dup_line_frac": lambda t: t["dup_line_frac"], "dup_para_frac": _off_unless("dup_para_frac"),
             "dup_line_char_frac": _off_unless("dup_line_char_frac"),
             "dup_para_char_frac": _off_unless("dup_para_char_frac"),
             "top_n_grams": _pairs("top_n_grams"), "dup_n_grams": _pairs("dup_n_grams")}

    def __init__(
        self,
        dup_line_frac: float | None = 0.3,
        dup_para_frac: float | None = 0.3,
        dup_line_char_frac: float | None = 0.2,
        dup_para_char_frac: float | None = 0.2,
        top_n_grams: dict[int, float] | None = None,
        dup_n_grams: dict[int, float] | None = None,
        per_language: bool = True,
    ):
        super().__init__()
        self.remember_thresholds(locals(), per_language)
        self._fixed["top_n_grams"] = top_n_grams if top_n_grams is not None else {2: 0.2, 3: 0.18, 4: 0.16}
        self._fixed["dup_n_grams"] = dup_n_grams if dup_n_grams is not None else \
            {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        t = self.thresholds(doc)
        text = doc.text
        total_chars = max(1, len(text))
        paragraphs = [p.strip() for p in regex.split(r"\n{2,}", text.strip()) if p.strip()]
        if paragraphs:
            count, chars = repeats(paragraphs)
            if t["dup_para_frac"] is not None and count / len(paragraphs) > t["dup_para_frac"]:
                return False, "gopher_dup_para_frac"
            if t["dup_para_char_frac"] is not None and chars / total_chars > t["dup_para_char_frac"]:
                return False, "gopher_dup_para_char_frac"
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            count, chars = repeats(lines)
            if t["dup_line_frac"] is not None and count / len(lines) > t["dup_line_frac"]:
                return False, "gopher_dup_line_frac"
            if t["dup_line_char_frac"] is not None and chars / total_chars > t["dup_line_char_frac"]:
                return False, "gopher_dup_line_char_frac"
        # the n-gram statistics exactly as datatrove computes them (FineWeb-2 derived its limits
        # with these): the top n-gram's characters times its count, and the characters of the
        # repeated occurrences of 5-10-grams (not the first one), over the text's characters
        words = doc_words(doc, text)
        for n, limit in sorted(t["top_n_grams"].items()):
            grams = get_n_grams(words, n)
            if grams and find_top_duplicate(grams) / total_chars > limit:
                return False, f"gopher_top_{n}_gram"
        for n, limit in sorted(t["dup_n_grams"].items()):
            if find_all_duplicate(words, n) / total_chars > limit:
                return False, f"gopher_dup_{n}_grams"
        return True


@register("c4_quality")
class C4Quality(Filter):
    """C4's rules. Line-level (these edit the text): drop lines without terminal punctuation,
    with fewer than ``min_words_per_line`` words, or mentioning javascript, and policy/cookie
    boilerplate lines. Document-level: lorem ipsum, curly brackets, fewer than
    ``min_num_sentences`` sentences. Sentence ends include 。！？ for CJK text."""

    name = "⛰ c4_quality"
    _POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")

    def __init__(
        self,
        filter_no_terminal_punct: bool = True,
        min_words_per_line: int = 3,
        max_word_length: int = 1000,
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        filter_policy: bool = True,
        min_num_sentences: int = 5,
    ):
        super().__init__()
        self.filter_no_terminal_punct = filter_no_terminal_punct
        self.min_words_per_line = min_words_per_line
        self.max_word_length = max_word_length
        self.filter_lorem_ipsum, self.filter_javascript = filter_lorem_ipsum, filter_javascript
        self.filter_curly_bracket, self.filter_policy = filter_curly_bracket, filter_policy
        self.min_num_sentences = min_num_sentences

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lower = doc.text.lower()
        if self.filter_lorem_ipsum and "lorem ipsum" in lower:
            return False, "c4_lorem_ipsum"
        if self.filter_curly_bracket and "{" in doc.text:
            return False, "c4_curly_bracket"
        mode = word_mode(doc)  # once, not per line
        kept = []
        for line in doc.text.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            words = split_words(stripped, *mode)
            if any(len(w) > self.max_word_length for w in words):
                continue
            if self.filter_no_terminal_punct and not stripped.endswith(TERMINAL_PUNCT):
                continue
            if len(words) < self.min_words_per_line:
                continue
            low = stripped.lower()
            if self.filter_javascript and "javascript" in low:
                continue
            if self.filter_policy and any(p in low for p in self._POLICY):
                continue
            kept.append(stripped)
        text = "\n".join(kept)
        if not text:
            return False, "c4_no_lines_left"
        if self.min_num_sentences > 0 and len(_SENTENCE_END.findall(text)) < self.min_num_sentences:
            return False, "c4_too_few_sentences"
        if text != doc.text:
            self.lines_removed("c4_rules", doc.text.count("\n") - text.count("\n"))
        doc.text = text
        return True


@register("fineweb_quality")
class FineWebQuality(PerLanguage, Filter):
    """FineWeb's rules: share of lines ending in punctuation, share of short lines, characters in
    duplicated lines, newlines per word. Short means fewer than ``short_line_length`` characters,
    a third of that for scripts written without spaces (denser per character). Per language
    (FineWeb-2): punctuation and newline ratios; duplicated characters up to 10%; no short-line rule."""

    name = "🍷 fineweb_quality"
    TABLE = {"line_punct_thr": lambda t: t["line_punct_thr"], "new_line_ratio": lambda t: t["new_line_ratio"],
             "short_line_thr": _off_unless("short_line_thr"),
             "char_duplicates_ratio": lambda t: t.get("char_duplicates_ratio", 0.1)}

    def __init__(
        self,
        line_punct_thr: float = 0.12,
        line_punct_exclude_zero: bool = False,
        short_line_thr: float | None = 0.67,
        short_line_length: int = 30,
        char_duplicates_ratio: float = 0.01,
        new_line_ratio: float = 0.3,
        per_language: bool = True,
    ):
        super().__init__()
        self.remember_thresholds(locals(), per_language)
        self.line_punct_exclude_zero, self.short_line_length = line_punct_exclude_zero, short_line_length

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lines = [line for line in doc.text.split("\n") if line.strip()]
        if not lines:
            return False, "fineweb_empty"
        unspaced, chinese = word_mode(doc)
        t = self.thresholds(doc)
        ratio = sum(1 for line in lines if line.rstrip().endswith(TERMINAL_PUNCT)) / len(lines)
        if ratio <= t["line_punct_thr"] and not (ratio == 0 and self.line_punct_exclude_zero):
            return False, "fineweb_line_punct_ratio"
        short = self.short_line_length // 3 if unspaced else self.short_line_length
        if t["short_line_thr"] is not None and sum(len(line) <= short for line in lines) / len(lines) >= t["short_line_thr"]:
            return False, "fineweb_short_line_ratio"
        dup_chars = repeats(lines)[1]
        non_empty_chars = sum(len(line) for line in lines)
        if dup_chars / max(1, non_empty_chars) > t["char_duplicates_ratio"]:
            return False, "fineweb_char_dup_ratio"
        words = split_words(doc.text, unspaced, chinese)
        if words and doc.text.count("\n") / len(words) > t["new_line_ratio"]:
            return False, "fineweb_newline_ratio"
        return True
