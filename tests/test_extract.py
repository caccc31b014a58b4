"""trafilatura step: main text of real pages, failures counted, setup failures loud."""

import os
import re
import statistics
import sys
from collections import Counter

import lxml.html
import pytest
from datatrove.data import Document

from corpus.extract import ExtractorSetupError, TrafilaturaExtractor
from tests.conftest import funnel_of


def _words(s):
    return Counter(re.findall(r"\w+", s.lower()))


def test_main_text_of_readability_pages(shared):
    root = shared("extraction-dev", "readability-pages")
    docs, expected = [], {}
    for name in sorted(os.listdir(root)):
        src, exp = root / name / "source.html", root / name / "expected.html"
        if src.exists() and exp.exists():
            docs.append(Document(text=src.read_text(encoding="utf-8", errors="replace"), id=name, metadata={}))
            expected[name] = lxml.html.fromstring(exp.read_text(encoding="utf-8", errors="replace") or "<p/>").text_content()
    step = TrafilaturaExtractor()
    out = {d.id: d.text for d in step.run(iter(docs))}
    f1 = []
    for name, text in expected.items():
        e, o = _words(text), _words(out.get(name, ""))
        inter = sum((e & o).values())
        p, r = inter / max(1, sum(o.values())), inter / max(1, sum(e.values()))
        f1.append(2 * p * r / max(1e-9, p + r))
    # Readability's own output is the reference: close agreement on the 130 real pages
    assert statistics.mean(f1) > 0.88
    assert all(d.metadata["content_type"] == "text/plain" for d in docs if d.id in out)


def test_failures_are_counted_by_reason():
    docs = [
        Document(text="<html><body><p></p></body></html>", id="empty", metadata={}),
        Document(text="<p>" + "x" * 2000 + "</p>", id="huge", metadata={}),
        Document(text="already text", id="wet", metadata={"content_type": "text/plain"}),
        Document(text="<html><body><article><p>" + "A real paragraph of text here. " * 20 + "</p></article></body></html>",
                 id="ok", metadata={}),
    ]
    step = TrafilaturaExtractor(max_html_bytes=1000, timeout=10)
    out = [d.id for d in step.run(iter(docs))]
    c = funnel_of(step)
    assert out == ["wet", "ok"]
    assert c.skipped["too_large"] == 1 and c.dropped["no_text"] == 1  # could not process vs nothing to keep
    assert c.documents_in == 4 and c.documents_out == 2


def test_deeply_nested_html_does_not_crash():
    deep = "<html><body>" + "<div>" * 50000 + "<p>deep text</p>" + "</div>" * 50000 + "</body></html>"
    ok = "<html><body><article><p>" + "A real paragraph of text here. " * 20 + "</p></article></body></html>"
    step = TrafilaturaExtractor(timeout=20)
    out = [d.id for d in step.run(iter([Document(text=deep, id="deep", metadata={}), Document(text=ok, id="ok", metadata={})]))]
    assert "ok" in out  # whatever happens to the deep page, the next one is extracted


def test_missing_trafilatura_stops_the_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "trafilatura", None)  # import trafilatura now raises ImportError
    step = TrafilaturaExtractor()
    with pytest.raises(ExtractorSetupError, match="trafilatura cannot be imported"):
        list(step.run(iter([Document(text="<p>hi</p>", id="a", metadata={})])))
