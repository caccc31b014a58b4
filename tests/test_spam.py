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
