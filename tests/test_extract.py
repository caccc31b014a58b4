"""html_extract and trafilatura steps: main text of real pages, failures counted, setup failures loud."""

import os
import re
import statistics
import sys
from collections import Counter

import lxml.html
import pytest
from datatrove.data import Document

from corpus.extract import ExtractorSetupError, HtmlExtractor, TrafilaturaExtractor, main_text
from tests.conftest import funnel_of


def _words(s):
    return Counter(re.findall(r"\w+", s.lower()))


def _readability_pages(root):
    docs, expected = [], {}
    for name in sorted(os.listdir(root)):
        src, exp = root / name / "source.html", root / name / "expected.html"
        if src.exists() and exp.exists():
            docs.append(Document(text=src.read_text(encoding="utf-8", errors="replace"), id=name, metadata={}))
            expected[name] = lxml.html.fromstring(exp.read_text(encoding="utf-8", errors="replace") or "<p/>").text_content()
    return docs, expected


def _mean_f1(expected, out):
    f1 = []
    for name, text in expected.items():
        e, o = _words(text), _words(out.get(name, ""))
        inter = sum((e & o).values())
        p, r = inter / max(1, sum(o.values())), inter / max(1, sum(e.values()))
        f1.append(2 * p * r / max(1e-9, p + r))
    return statistics.mean(f1)


def test_main_text_of_readability_pages(shared):
    docs, expected = _readability_pages(shared("extraction-dev", "readability-pages"))
    step = TrafilaturaExtractor()
    out = {d.id: d.text for d in step.run(iter(docs))}
    # Readability's own output is the reference: close agreement on the 130 real pages
    assert _mean_f1(expected, out) > 0.88
    assert all(d.metadata["content_type"] == "text/plain" for d in docs if d.id in out)


def test_html_extract_main_text_of_readability_pages(shared):
    docs, expected = _readability_pages(shared("extraction-dev", "readability-pages"))
    step = HtmlExtractor(timeout=10)
    out = {d.id: d.text for d in step.run(iter(docs))}
    # measured 0.960 on all 130 pages (trafilatura step: 0.932; bench/extract.py); the rules were
    # chosen on half of them, so the bound is that of the held-out half (0.97) less a margin
    assert _mean_f1(expected, out) > 0.94
    c = funnel_of(step)
    assert c.documents_in == 130 and c.documents_out == len(out) >= 128
    assert 0 < c.counters["fallback_used"] <= 20  # trafilatura only on the pages the fast pass is unsure of
    assert all(d.metadata["content_type"] == "text/plain" for d in docs if d.id in out)
    assert max(text.count("\n") for text in out.values()) > 50  # lines and paragraphs kept for line_cleaner


def test_html_extract_chinese_page(shared):
    from corpus.readers import FilesReader

    pages = shared("zh-extraction", "pages")
    page = "4fa9dfe4-874c-4c43-9260-6ea22710852c"
    docs = list(FilesReader([str(pages / "original" / f"{page}.html")]).run())
    assert docs[0].metadata["encoding"] == "gb18030"  # served as GBK
    (doc,) = HtmlExtractor().run(iter(docs))
    gold = re.sub(r"\s+", "", (pages / "cleaned" / f"{page}.txt").read_text(encoding="utf-8"))
    text = re.sub(r"\s+", "", doc.text)
    assert "美国临床肿瘤学会（ASCO）第40届年会今年6月8日落幕" in text
    shingles = lambda s: {s[i:i + 4] for i in range(len(s) - 3)}  # noqa: E731
    assert len(shingles(text) & shingles(gold)) / len(shingles(text) | shingles(gold)) > 0.9


ARTICLE = "<html><body><article><p>" + "A real paragraph of text here. " * 20 + "</p></article></body></html>"


def failure_docs(plain: str, page_metadata: dict) -> list[Document]:
    """An empty page, one over 1,000 bytes, a plain-text document and a good page."""
    return [
        Document(text="<html><body><p></p></body></html>", id="empty", metadata={}),
        Document(text="<p>" + "x" * 2000 + "</p>", id="huge", metadata={}),
        Document(text=plain, id="wet", metadata={"content_type": "text/plain"}),
        Document(text=ARTICLE, id="ok", metadata=page_metadata),
    ]


def test_html_extract_failures_and_plain_text():
    docs = failure_docs("already text\nsecond line", {"content_type": "text/html"})
    step = HtmlExtractor(max_html_bytes=1000, timeout=10)
    out = {d.id: d for d in step.run(iter(docs))}
    c = funnel_of(step)
    assert list(out) == ["wet", "ok"]
    assert out["wet"].text == "already text\nsecond line"  # passed through untouched
    assert out["ok"].metadata["content_type"] == "text/plain" and "A real paragraph" in out["ok"].text
    assert c.skipped["too_large"] == 1 and c.dropped["no_text"] == 1
    assert c.documents_in == 4 and c.documents_out == 2
    assert c.counters["passed_plain_text"] == 1 and "unsure_short_output" not in c.counters  # nothing to look for


def test_html_extract_asks_trafilatura_where_unsure():
    article = "<p>" + "This sentence belongs to the article body. " * 12 + "</p>"
    # resiliparse drops a "collapsed" block (an accordion) as hidden: nothing left, unsure
    collapsed = f"<html><body><nav><a href='/'>Home</a></nav><div class='collapsed'>{article}</div></body></html>"
    page = "<html><body><nav><a href='/'>Home</a></nav><article>" + article * 3 + "</article></body></html>"
    docs = lambda: [Document(text=collapsed, id="collapsed", metadata={}), Document(text=page, id="article", metadata={})]  # noqa: E731
    step = HtmlExtractor(timeout=10)
    out = {d.id: d.text for d in step.run(iter(docs()))}
    c = funnel_of(step).counters
    assert c["unsure_short_output"] == 1 and c["fallback_used"] == 1  # one page went to trafilatura
    assert "belongs to the article body" in out["collapsed"]
    assert "Home" not in out["article"] and out["article"].count("belongs to the article") == 36

    step = HtmlExtractor(fallback=False)
    out = {d.id: d.text for d in step.run(iter(docs()))}
    assert "collapsed" not in out and "fallback_used" not in funnel_of(step).counters
    assert funnel_of(step).dropped["no_text"] == 1

    step = HtmlExtractor(fallback_max_tags=5)  # trafilatura is not asked about pages this large
    assert "collapsed" not in {d.id for d in step.run(iter(docs()))}
    assert funnel_of(step).counters["fallback_skipped_large"] == 1


def test_main_text_rules():
    para = "A full sentence that is long enough to count as a paragraph here. "
    text = "Home | News | Sport\n\n\n\n  " + para + "\n" + "Short line\n" + para + "\nCopyright 2024 Example"
    out, unsure = main_text(text)
    assert out == para.strip() + "\nShort line\n" + para.strip() and unsure is None  # edges cut, lines kept
    assert main_text("Only a few words here.")[1] == "short_output"
    heads = "\n".join(["Headline words that run on without any sentence mark at all here"] * 5)
    assert main_text(heads + "\n" + para) == (heads + "\n" + para.strip(), None)  # a cut would take most: none
    assert main_text("\n".join([para, *["one two three"] * 12, para]))[1] is None  # 60% in short lines
    assert main_text("\n".join([para, *["one two three"] * 30, para]))[1] == "short_lines"  # 79%: a menu, a list
    # Chinese: 30 characters make a paragraph; the ICP footer has no sentence mark and is cut
    zh = "据记者了解，江西工商局没有与其他地方工商局连手调查涉案产品，目前尚未受到明显影响。"
    out, unsure = main_text(f"首页 > 新闻\n{zh}\n{zh}\n京ICP证000000号 联系我们 关于我们 网站地图 版权所有 新闻中心")
    assert out == f"{zh}\n{zh}" and unsure is None


def test_html_extract_survives_a_page_that_hangs_the_fast_pass():
    deep = "<html><body>" + "<div>" * 50000 + "<p>deep text</p>" + "</div>" * 50000 + "</body></html>"
    ok = ARTICLE
    step = HtmlExtractor(timeout=3)
    out = [d.id for d in step.run(iter([Document(text=deep, id="deep", metadata={}), Document(text=ok, id="ok", metadata={})]))]
    assert "ok" in out  # resiliparse's main-content pass is quadratic in depth: timed out, then trafilatura tried
    assert funnel_of(step).counters["fast_failed_timeout"] == 1


def test_missing_resiliparse_stops_the_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "resiliparse.extract.html2text", None)
    with pytest.raises(ExtractorSetupError, match="resiliparse cannot be imported"):
        list(HtmlExtractor().run(iter([Document(text="<p>hi</p>", id="a", metadata={})])))


def test_failures_are_counted_by_reason():
    docs = failure_docs("already text", {})
    step = TrafilaturaExtractor(max_html_bytes=1000, timeout=10)
    out = [d.id for d in step.run(iter(docs))]
    c = funnel_of(step)
    assert out == ["wet", "ok"]
    assert c.skipped["too_large"] == 1 and c.dropped["no_text"] == 1  # could not process vs nothing to keep
    assert c.documents_in == 4 and c.documents_out == 2


def test_deeply_nested_html_does_not_crash():
    deep = "<html><body>" + "<div>" * 50000 + "<p>deep text</p>" + "</div>" * 50000 + "</body></html>"
    ok = ARTICLE
    step = TrafilaturaExtractor(timeout=20)
    out = [d.id for d in step.run(iter([Document(text=deep, id="deep", metadata={}), Document(text=ok, id="ok", metadata={})]))]
    assert "ok" in out  # whatever happens to the deep page, the next one is extracted


def test_missing_trafilatura_stops_the_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "trafilatura", None)  # import trafilatura now raises ImportError
    step = TrafilaturaExtractor()
    with pytest.raises(ExtractorSetupError, match="trafilatura cannot be imported"):
        list(step.run(iter([Document(text="<p>hi</p>", id="a", metadata={})])))
