"""Heuristic quality rules, language-aware: Chinese and Japanese are not dropped for having no spaces."""

import pytest
from datatrove.data import Document

from corpus.extract import TrafilaturaExtractor
from corpus.readers import WarcReader
from corpus.filters.heuristics import C4Quality, FineWebQuality, GopherQuality, GopherRepetition, split_words
from corpus.filters.language import LanguageID
from corpus.filters.quality import QualityScore


@pytest.fixture(scope="module")
def web_docs():
    from tests.conftest import shared_path

    reader = WarcReader([str(shared_path("warc", "resiliparse", "warcfile.warc.gz")), str(shared_path("warc", "dolma") / "*.warc.gz")])
    return list(LanguageID().run(TrafilaturaExtractor().run(reader.run())))


def test_chinese_pages_are_not_dropped_for_lack_of_spaces(web_docs):
    zh = [d for d in web_docs if d.metadata["language"] == "zh" and len(d.text) > 500]
    assert len(zh) >= 3
    step = GopherQuality()
    reasons = [step.filter(d) for d in zh]
    # space-splitting would see a few dozen "words" in each page and drop it as too short
    assert any(len(d.text.split()) < 50 for d in zh)
    assert all(r is True or r[1] != "gopher_short_doc" for r in reasons)
    assert all(len(split_words(d.text, True)) >= 50 for d in zh)
    assert sum(r is True for r in reasons) >= len(zh) // 2


def test_english_pages_pass_and_junk_fails(web_docs):
    en = [d for d in web_docs if d.metadata["language"] == "en" and len(d.text) > 2000]
    step = GopherQuality()
    assert sum(step.filter(d) is True for d in en) >= 0.7 * len(en)
    spam = Document(text=" ".join(["cheap", "watches", "buy", "now", "best", "price"] * 30), id="s", metadata={"language": "en"})
    assert step.filter(spam) == (False, "gopher_stop_words")
    numbers = Document(text=" ".join(str(i) for i in range(300)) + " the and of", id="n", metadata={"language": "en"})
    assert step.filter(numbers)[0] is False


def test_japanese_stop_words_counted_per_character():
    text = "これは日本語の文章です。私たちは毎日新しいことを学びます。" * 5
    assert GopherQuality().filter(Document(text=text, id="j", metadata={"language": "ja"})) is True


def test_repetition_rules(web_docs):
    lines = "\n".join(["Buy now!"] * 20 + [f"Line number {i} with words." for i in range(10)])
    assert GopherRepetition().filter(Document(text=lines, id="r", metadata={}))[1].startswith("gopher_dup")
    template = " ".join(f"Sentence {i} tells something new about topic {i * 7}." for i in range(80))
    assert GopherRepetition().filter(Document(text=template, id="t", metadata={}))[1] == "gopher_top_2_gram"
    en = [d for d in web_docs if d.metadata["language"] == "en" and len(d.text) > 2000]
    assert sum(GopherRepetition().filter(d) is True for d in en) >= 0.7 * len(en)


def test_fineweb_rules():
    menu = "\n".join(["Home", "About", "Contact", "Products", "Login", "Cart"] * 3)
    assert FineWebQuality().filter(Document(text=menu, id="m", metadata={}))[0] is False
    article = "\n".join(f"This is a full sentence number {i} of a real article about rivers." for i in range(20))
    assert FineWebQuality().filter(Document(text=article, id="a", metadata={})) is True
    zh = "\n".join(f"这是第{i}个完整的句子，讲述了一个关于河流的真实故事。" for i in range(20))
    assert FineWebQuality().filter(Document(text=zh, id="z", metadata={"language": "zh"})) is True


def test_c4_removes_lines_and_counts_sentences():
    text = "Menu\nShare on Facebook\nThis is a proper sentence about the topic.\nPlease enable javascript to view.\n" + \
        "\n".join(f"Another proper sentence number {i} is here." for i in range(5))
    doc = Document(text=text, id="c", metadata={})
    assert C4Quality().filter(doc) is True
    assert "Menu" not in doc.text and "javascript" not in doc.text and "proper sentence about" in doc.text
    assert C4Quality().filter(Document(text="function() { return 1; }", id="x", metadata={})) == (False, "c4_curly_bracket")
    zh = "\n".join(f"这是第{i}个完整的句子，讲述了一个故事。" for i in range(6))
    assert C4Quality().filter(Document(text=zh, id="z", metadata={"language": "zh"})) is True


def test_quality_score_orders_documents(web_docs):
    step = QualityScore()
    good = Document(text="\n".join(f"The river flows to the sea and it is wide, number {i}." for i in range(200)), id="g", metadata={"language": "en"})
    bad = Document(text="\n".join(["Home", "Login", "$$$ 123", "Home"] * 20), id="b", metadata={"language": "en"})
    step.filter(good), step.filter(bad)
    assert 0 <= bad.metadata["quality_score"] < 0.5 < good.metadata["quality_score"] <= 1
    assert QualityScore(min_score=0.5).filter(bad) == (False, "low_quality_score")


def test_chinese_words_are_segmented_not_characters():
    from corpus.filters.heuristics import doc_words

    doc = Document(text="国家统计局发布了最新的居民消费价格数据。", id="zh", metadata={"language": "zh"})
    assert doc_words(doc) == ["国家统计局", "发布", "了", "最新", "的", "居民消费", "价格", "数据"]
    ja = Document(text="東京で会議が開かれた。", id="ja", metadata={"language": "ja"})
    assert doc_words(ja)[:2] == ["東", "京"]  # Japanese: one word per character, as before


def test_real_chinese_articles_survive_the_repetition_rules(shared):
    """Hand-extracted main text of real Chinese pages: word n-grams (not character n-grams) keep
    most of them (character 5-grams dropped 13 of 38 as duplicated)."""
    files = sorted(shared("zh-extraction", "pages", "cleaned").glob("*.txt"))
    docs = [Document(text=f.read_text(encoding="utf-8"), id=f.name, metadata={"language": "zh"}) for f in files]
    kept = list(GopherRepetition().run(GopherQuality().run(iter(docs))))
    assert len(kept) >= 0.8 * len(docs)


def test_every_language_lid_emits_has_its_own_thresholds():
    """FineWeb-2's per-language values (or FineWeb's, for English; or, for the 7 languages it
    has none for, its nearest one's) for all 176 lid.176 labels, all 220 heliport labels and the
    languages lingua's second opinion adds."""
    import os

    import heliport

    from corpus.filters.heuristics import language_thresholds, stop_words
    from corpus.filters.language import HELIPORT_GROUPS, default_model_path, iso639_3_to_code, load_model

    labels = [label.removeprefix("__label__") for label in load_model(default_model_path()).get_labels()]
    assert len(labels) == 176
    with open(os.path.join(os.path.dirname(heliport.__file__), "confidenceThresholds")) as f:
        heliport_labels = [iso639_3_to_code().get(line.split()[0], line.split()[0]) for line in f if line.strip()]
    assert len(heliport_labels) == 220
    for lang in set(labels) | set(heliport_labels) | {c for group in HELIPORT_GROUPS.values() for c in group}:
        t = language_thresholds(lang)
        assert t is not None, lang
        # FineWeb-2 publishes dup_line_frac 0 for a few languages with little reference text
        assert 0 <= t["dup_line_frac"] <= 1 and t["line_punct_thr"] < 1 and t["new_line_ratio"] > 0, lang
        assert 0 <= t["min_avg_word_length"] < t["max_avg_word_length"], lang
        assert {n for n, _ in t["dup_n_grams"]} == set(range(5, 11)) and {n for n, _ in t["top_n_grams"]} == {2, 3, 4}
        assert len(stop_words(lang)) >= 3, lang
    assert "的" in stop_words("zh") and "и" in stop_words("ru") and "the" in stop_words("en")
    assert language_thresholds("xx") is None and language_thresholds("../etc") is None


def test_thresholds_follow_the_documents_language_unless_set():
    ru = Document(text="x", id="ru", metadata={"language": "ru"})
    en = Document(text="x", id="en", metadata={"language": "en"})
    rep = GopherRepetition()
    assert rep.thresholds(en)["dup_n_grams"][5] == 0.15 and rep.thresholds(en)["dup_para_frac"] == 0.3
    assert rep.thresholds(ru)["dup_para_frac"] is None  # off in FineWeb-2
    assert rep.thresholds(ru)["dup_line_frac"] != 0.3
    assert GopherRepetition(dup_line_frac=0.5).thresholds(ru)["dup_line_frac"] == 0.5  # set by the user: wins
    assert GopherRepetition(per_language=False).thresholds(ru)["dup_para_frac"] == 0.3
    fw = FineWebQuality()
    assert fw.thresholds(ru)["short_line_thr"] is None and fw.thresholds(ru)["char_duplicates_ratio"] == 0.1
    assert fw.thresholds(en)["char_duplicates_ratio"] == 0.01


def test_thai_stop_words_longer_than_one_character_are_found():
    """Thai is split into characters; FineWeb-2's Thai stop words are whole words (ที่, และ)."""
    text = ("กรุงเทพมหานครเป็นเมืองหลวงและเมืองที่มีประชากรมากที่สุดของประเทศไทย " * 20).strip()
    doc = Document(text=text, id="th", metadata={"language": "th"})
    assert GopherQuality(min_doc_words=10).filter(doc) is True
    assert GopherQuality(min_doc_words=10).filter(Document(text="ก ข ค " * 40, id="t2", metadata={"language": "th"})) \
        == (False, "gopher_stop_words")


def test_repeated_ngrams_are_counted_as_datatrove_counts_them(shared):
    """FineWeb-2's per-language limits were derived with datatrove's counts: the characters of the
    repeated occurrences of an n-gram (not its first), over the text's characters. A page whose
    title comes back once in the text is kept; a keyword block repeated four times is dropped;
    on real English excerpts our decisions are datatrove's own."""
    from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter

    article = ("Command pattern is an object behavioral design pattern. It lets an invoker trigger work without "
               "knowing who performs it. Each request becomes a small object with an execute method, so a menu item, "
               "a toolbar button and a keyboard shortcut can share one action. Because commands are objects, they can "
               "be queued, logged, sent across a network or undone later. A text editor keeps a history list and calls "
               "undo on the last entry when the user presses control and z. The receiver holds the real logic, while "
               "the client decides which receiver each command talks to. Critics say the pattern adds many tiny "
               "classes; in languages with closures a plain function often does the same job with less ceremony.")
    title_twice = Document(text=f"Command pattern is an object behavioral design pattern. {article}", id="t", metadata={"language": "en"})
    keywords = "cheap flights hotels deals best price book now "
    block = Document(text=keywords * 4 + article, id="k", metadata={"language": "en"})
    ours = GopherRepetition(per_language=False)
    assert ours.filter(title_twice) is True
    assert ours.filter(block) == (False, "gopher_top_2_gram") or ours.filter(block)[1].startswith("gopher_dup_")

    import json
    rows = [json.loads(line) for line in shared("web-quality", "hplt2-excerpts.jsonl").open(encoding="utf-8")]
    theirs = GopherRepetitionFilter(language="eng", dup_line_frac=None, dup_para_frac=None,
                                    dup_line_char_frac=None, dup_para_char_frac=None)
    ours = GopherRepetition(per_language=False, dup_line_frac=None, dup_para_frac=None,
                            dup_line_char_frac=None, dup_para_char_frac=None)
    docs = [Document(text=r["text"], id=r["id"], metadata={"language": "en"}) for r in rows if r["lang"] == "eng_Latn"][:300]
    same = sum((ours.filter(d) is True) == (theirs.filter(d) is True) for d in docs)
    assert same >= 0.95 * len(docs)  # the rest: their word tokenizer splits punctuation off words
