"""adult_spam_filter: adult and spam pages go, with their reason; ordinary pages stay."""

from __future__ import annotations

from datatrove.data import Document

from corpus.extract import TrafilaturaExtractor
from corpus.filters.spam import AdultSpamFilter, bad_words
from corpus.readers import WarcReader
from tests.conftest import funnel_of


def verdicts(docs):
    step = AdultSpamFilter()
    kept = {d.id for d in step.run(iter(docs))}
    return kept, funnel_of(step).dropped


def test_piracy_disclaimer_page_is_dropped(shared):
    docs = list(TrafilaturaExtractor().run(WarcReader([str(shared("warc", "resiliparse", "warcfile.warc.gz"))]).run()))
    (page,) = [d for d in docs if "05925.net" in d.metadata["url"]]
    kept, dropped = verdicts(docs)
    assert page.id not in kept and dropped.get("adult_warning") == 1
    # this Common Crawl excerpt's other junk: Chinese lottery pages ("下注", "包赔", "加QQ") and a porn
    # novel index; every page in another script stays
    assert dropped == {"adult_warning": 1, "gambling": 3, "bad_words": 1}
    assert all(d.id in kept for d in docs if not any("\u4e00" <= c <= "\u9fff" for c in d.text[:200]))


def test_reasons():
    article = ("The jury found the defendant guilty of assault after a trial that lasted three weeks. "
               "The judge will announce the sentence next month, the court said in a statement. ") * 5
    keywords = "\n".join(["热门搜索 北京 上海 广州 深圳 天津 重庆 成都 武汉 西安 南京"] * 6)
    docs = [
        Document(text=article, id="news", metadata={"url": "https://news.example.com/court", "language": "en"}),
        Document(text=article, id="url", metadata={"url": "https://free-porn.example.com/x", "language": "en"}),
        Document(text=keywords, id="seo", metadata={"language": "zh"}),
        Document(text="cheap flights, cheap hotels, cheap cars, best deals, discount codes, last minute, "
                      "travel insurance, holiday packages\n" * 5, id="seo_en", metadata={"language": "en"}),
    ]
    kept, dropped = verdicts(docs)
    assert kept == {"news"}
    assert dropped == {"adult_url": 1, "seo_keyword_list": 2}


def test_wordlists_ship_with_the_package():
    for lang in ("en", "zh", "ja", "ko", "ru"):
        singles, phrases = bad_words(lang)
        assert len(singles) + len(phrases) > 50
    assert bad_words("xx") == (frozenset(), ())


def test_korean_prose_is_not_read_as_a_keyword_list_or_a_page_without_stop_words(shared):
    """Korean spaces its words and writes its particles onto them: HPLT's Korean excerpts (their
    line breaks lost) are not keyword lists, and FineWeb-2's Korean stop words (particles) are
    found inside words. 730 and 149 of these 1,000 excerpts were dropped by those two rules before."""
    import json

    from corpus.filters.heuristics import GopherQuality

    rows = [json.loads(line) for line in open(shared("web-quality", "hplt2-excerpts.jsonl"), encoding="utf-8")]
    korean = [Document(text=r["text"], id=r["id"], metadata={"language": "ko"}) for r in rows if r["lang"] == "kor_Hang"]
    assert len(korean) == 1000
    _, dropped = verdicts(korean)
    assert dropped.get("seo_keyword_list", 0) <= 10, dropped
    gopher = GopherQuality(min_doc_words=50, max_bullet_lines_ratio=None, max_ellipsis_lines_ratio=None)
    reasons = [r[1] for d in korean if (r := gopher.filter(d)) is not True]
    assert reasons.count("gopher_stop_words") <= 10
    # the same rule still takes a Korean list of items separated by bars and commas
    items = " | ".join(f"상품{i}, 할인{i}, 무료배송{i}" for i in range(20))
    assert AdultSpamFilter().filter(Document(text=items, id="k", metadata={"language": "ko"})) == (False, "seo_keyword_list")
