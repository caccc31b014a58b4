"""Adult and spam pages, in any language: four signals, each a reason in the funnel.

- ``adult_url``: the URL's host or path has an adult word as a whole token (``porn``, ``xxx``,
  ``sex``, ``hentai``, ...), or an adult top-level domain (``.xxx``, ``.porn``, ``.sex``,
  ``.adult``), as FineWeb's URL filter does.
- ``adult_warning``: the page tells minors to leave ("请未成年网友自觉离开", "未满18岁",
  "18歳未満", "you must be 18", "только для взрослых"): an adult or piracy site's disclaimer.
- ``bad_words``: words of the LDNOOBW lists (en, zh, ja, ko, ru; CC-BY-4.0, shipped in
  ``filters/data/ldnoobw`` with their attribution), and the pornographic terms those lists
  lack (``ADULT_TERMS``: en, ru stems, zh), make at least ``max_bad_word_share`` of the
  words (characters for Chinese, Japanese, Korean), and occur at least ``min_bad_words`` times:
  a news story that names a crime once stays; a porn page's keyword soup goes.
- ``gambling``: lottery, betting and casino terms (zh, en, ru) at the same density: the
  "计划群, 下注, 包赔, 加QQ" pages that make much of Chinese web spam.
- ``seo_keyword_list``: a page that is mostly short items separated by commas, spaces or bars
  ("热门搜索: 北京 上海 ..." or "cheap flights, cheap hotels, ...") rather than sentences.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import regex
from datatrove.data import Document

from corpus.core.funnel import Filter
from corpus.core.registry import register

ADULT_URL_WORDS = {"porn", "porno", "pornhub", "xxx", "sex", "sexy", "hentai", "nude", "nudes", "naked", "milf",
                   "camgirl", "camgirls", "escort", "escorts", "xvideos", "xhamster", "redtube", "youporn", "fetish",
                   "bdsm", "erotic", "erotica", "adult", "nsfw", "jav", "18av", "av女优", "色情", "成人", "黄色"}
ADULT_TLDS = (".xxx", ".porn", ".sex", ".adult", ".sexy")
ADULT_WARNING = regex.compile(
    r"未成年(网友|人|網友)?.{0,6}(自觉|自覺|请|請)?.{0,4}离开|未成年.{0,4}離開|未满\s*18|未滿\s*18|18\s*岁以下|18\s*歲以下|"
    r"18歳未満|18세 ?미만|you must be (at least )?18|adults only|18\+ only|только для взрослых|18\+ лет|"
    r"старше 18 лет", regex.I)
# Pornographic vocabulary that the LDNOOBW lists lack (theirs are mostly insults); Russian as
# stems, matched at the start of a word, since the language inflects them
ADULT_TERMS = {
    "en": frozenset({"porn", "porno", "xxx", "blowjob", "blowjobs", "milf", "hentai", "cumshot", "horny", "nude",
                     "nudes", "naked", "slut", "sluts", "incest", "orgasm", "threesome", "erotic", "handjob"}),
    "ru": ("порн", "минет", "эротик", "эротич", "шлюх", "трахн", "трахал", "голая", "голые", "голых", "сиськ",
           "инцест", "проститу", "оргазм", "кончил", "хентай", "нудис", "сучк", "пизд", "ебал", "ебут"),
    "zh": ("色情", "成人小说", "做爱", "乱伦", "肉棒", "自慰", "口交", "淫", "裸聊", "女优", "一夜情", "成人视频", "黄片",
           "偷情", "巨乳", "熟女", "人妻", "无码", "av"),
}
# Gambling and lottery spam (a large share of Chinese web spam): its own reason, counted like bad words
GAMBLING_TERMS = {
    "zh": ("六合彩", "彩票", "时时彩", "特码", "平特", "下注", "倍投", "开奖", "博彩", "赌场", "赌博", "百家乐", "娱乐城",
           "投注", "本金", "包赔", "提现", "充值", "马会", "一肖", "生肖", "计划群", "加QQ", "加微信", "赔率", "盘口"),
    # not "slots" (time slots) nor "ставка" (an interest rate): words with an everyday sense stay out
    "en": frozenset({"casino", "casinos", "betting", "jackpot", "roulette", "blackjack", "sportsbook", "wager",
                     "poker", "bookmaker"}),
    "ru": ("казино", "букмекер", "рулетк", "джекпот"),
}
# scripts written without spaces between words, where a space separates keywords (Korean spaces
# its words: its lines split like English ones)
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]")
_WORD = regex.compile(r"[\p{L}\p{N}]+")
_ITEM_SPLIT_CJK = regex.compile(r"[,，、;；|｜/·•]+|\s+")  # spaces separate keywords in Chinese, not words
_ITEM_SPLIT = regex.compile(r"\s*[,;|/·•]+\s*")
_SENTENCE_END = regex.compile(r"[.!?。！？…]\s*$")
# after a sentence's end inside a line: text whose line breaks were lost is judged sentence by
# sentence
_SENTENCE_SPLIT = regex.compile(r"(?<=\p{L}[.!?…])\s+")


@lru_cache(maxsize=None)
def bad_words(language: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """(single words, multi-word phrases or CJK strings) of the LDNOOBW list for a language;
    empty for languages without a list."""
    try:
        text = resources.files("corpus.filters").joinpath("data", "ldnoobw", language).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return frozenset(), ()
    entries = [w.strip().lower() for w in text.splitlines() if w.strip()]
    cjk = language in ("zh", "ja", "ko")
    if cjk:  # one character (性, 乳, 奶 ...) is part of too many ordinary words (可能性, 牛奶) to count
        entries = [w for w in entries if len(w) > 1]
    words = frozenset(w for w in entries if not cjk and " " not in w)
    phrases = tuple(w for w in entries if cjk or " " in w)
    return words, phrases


def url_is_adult(url: str) -> bool:
    lower = url.lower()
    host = lower.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
    if host.endswith(ADULT_TLDS):
        return True
    return any(token in ADULT_URL_WORDS for token in re.split(r"[^a-z0-9\u4e00-\u9fff]+", lower) if token)


@register("adult_spam_filter")
class AdultSpamFilter(Filter):
    """Drops adult and spam pages: adult URLs, adult-site warnings to minors, pages dense in
    LDNOOBW bad words (en, zh, ja, ko, ru), gambling spam, SEO keyword lists. Reasons:
    adult_url, adult_warning, bad_words, gambling, seo_keyword_list."""

    name = "🔞 adult_spam_filter"

    def __init__(self, url_rules: bool = True, warnings: bool = True, max_bad_word_share: float = 0.005,
                 min_bad_words: int = 3, max_keyword_item_share: float = 0.6, min_keyword_items: int = 30):
        super().__init__()
        if not 0 < max_bad_word_share <= 1 or not 0 < max_keyword_item_share <= 1:
            raise ValueError("max_bad_word_share and max_keyword_item_share must be in (0, 1]")
        if min_bad_words < 1 or min_keyword_items < 1:
            raise ValueError("min_bad_words and min_keyword_items must be at least 1")
        self.url_rules, self.warnings = url_rules, warnings
        self.max_bad_word_share, self.min_bad_words = max_bad_word_share, min_bad_words
        self.max_keyword_item_share, self.min_keyword_items = max_keyword_item_share, min_keyword_items

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if self.url_rules and doc.metadata.get("url") and url_is_adult(doc.metadata["url"]):
            return False, "adult_url"
        if self.warnings and ADULT_WARNING.search(text[:20000]):
            return False, "adult_warning"
        adult, gambling, size = self._term_hits(text, doc.metadata.get("language"))
        for reason, hits in (("bad_words", adult), ("gambling", gambling)):
            if hits >= self.min_bad_words and hits / max(1, size) >= self.max_bad_word_share:
                return False, reason
        if self._keyword_list(text):
            return False, "seo_keyword_list"
        return True

    def _term_hits(self, text: str, language: str | None) -> tuple[int, int, int]:
        """(bad-word hits, gambling-term hits, size): size is words, or characters plus words for
        Chinese, Japanese, Korean; the sample is read once for both."""
        sample = text[:100_000]
        cjk_chars = len(_CJK.findall(sample))
        languages = [language] if language in ("en", "zh", "ja", "ko", "ru") else \
            (["zh", "ja", "ko"] if cjk_chars > len(sample) / 4 else ["en", "ru"])
        lower = sample.lower()
        words = _WORD.findall(lower)
        adult = gambling = 0
        for lang in languages:
            singles, phrases = bad_words(lang)
            adult += sum(1 for w in words if w in singles) + sum(lower.count(p) for p in phrases)
            adult += _count_terms(ADULT_TERMS.get(lang, ()), lang, words, lower)
            gambling += _count_terms(GAMBLING_TERMS.get(lang, ()), lang, words, lower)
        return adult, gambling, cjk_chars + len(words) if cjk_chars else len(words)

    def _keyword_list(self, text: str) -> bool:
        """Most of the text is short items between separators, in lines that are not sentences."""
        items = keyword_chars = total = 0
        for line in (seg.strip() for line in text.splitlines() for seg in _segments(line)):
            total += len(line)
            parts = _item_parts(line)
            if parts:
                items += len(parts)
                keyword_chars += len(line)
        return items >= self.min_keyword_items and keyword_chars / max(1, total) >= self.max_keyword_item_share


def _count_terms(terms, lang: str, words: list[str], lower: str) -> int:
    """Occurrences of a term list: whole words (a frozenset), Russian stems at word starts (the
    language inflects), else substrings (Chinese)."""
    if isinstance(terms, frozenset):
        return sum(1 for w in words if w in terms)
    if lang == "ru":
        return sum(1 for w in words if w.startswith(terms))
    return sum(lower.count(t.lower()) for t in terms)


def _segments(line: str) -> list[str]:
    """A line of a spaced script cut after each sentence's end (text whose line breaks were lost,
    such as Korean or Russian prose, is then judged sentence by sentence); a CJK line stays whole."""
    return [line] if _is_cjk(line) else _SENTENCE_SPLIT.split(line)


def _is_cjk(line: str) -> bool:
    return len(_CJK.findall(line)) > len(line) / 3


def _item_parts(line: str) -> list[str]:
    """The items of a keyword line (3 or more, nearly all short), or [] for any other line (a
    sentence, a table row)."""
    if not line or _SENTENCE_END.search(line) or line.startswith("|"):
        return []
    cjk = _is_cjk(line)
    parts = [p for p in (_ITEM_SPLIT_CJK if cjk else _ITEM_SPLIT).split(line) if p.strip()]
    short = sum(len(p) <= (8 if cjk else 25) for p in parts)
    return parts if len(parts) >= 3 and short >= 0.8 * len(parts) else []
