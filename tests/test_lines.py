"""line_cleaner: boilerplate lines go, the article stays, in Chinese, Japanese, Russian and English."""

from __future__ import annotations

import json

import pytest
from datatrove.data import Document

from corpus.decode import decode
from corpus.extract import TrafilaturaExtractor
from corpus.filters.lines import LineCleaner, line_reason
from tests.conftest import funnel_of

ARTICLE = ("北京时间昨天，国家统计局发布了最新的居民消费价格数据，涨幅比上月有所回落。\n"
           "分析人士认为，食品价格的季节性波动是主要原因，预计下个月将保持平稳。\n"
           "业内专家表示，随着供应链逐步恢复，物价总体将保持在合理区间运行。")


def test_chinese_article_keeps_its_body_and_loses_app_vip_login_lines():
    text = "\n".join(["首页 > 新闻 > 财经", "打開APP 閱讀全文", "未登錄 | 登录 | 注册", ARTICLE,
                      "開通VIP 會員專享", "相关文章", "分享到：微信 微博 QQ空间", "版权所有 © 2023 某某网 京ICP备12345678号",
                      "客服电话：400-000-0000"])
    doc = Document(text=text, id="zh", metadata={"url": "https://news.example.cn/a/1.html"})
    step = LineCleaner()
    out = list(step.run(iter([doc])))
    assert out and out[0].text == ARTICLE
    removed = funnel_of(step).lines_removed
    assert sum(removed.values()) == 8
    assert {"boilerplate_login", "boilerplate_copyright", "boilerplate_navigation", "boilerplate_related",
            "boilerplate_share", "boilerplate_service"} <= set(removed)


def test_sentences_that_mention_the_words_stay():
    long_en = ("The court ruled that the copyright of the photograph belongs to the agency, not to the magazine "
               "that printed it, and ordered damages.")
    long_zh = "法院认为，这张照片的版权所有者是通讯社而不是刊登它的杂志，并判决杂志赔偿损失，此案引起了出版界的广泛关注。"
    assert line_reason(long_en, 120) is None and line_reason(long_zh, 120) is None
    assert line_reason("| 1998 | 许茹芸 | 我依然爱你 | 作曲 |", 120) is None  # a table row, not a menu
    assert line_reason("Home | News | Sport | Weather | Contact", 120) == "boilerplate_navigation"
    assert line_reason("Мы используем файлы cookie", 120) == "boilerplate_cookies"


def test_lines_repeated_across_a_sites_documents_go():
    docs = [Document(text=f"Article {i} says something different about topic {i}.\nSubscribe-free footer of the Example Times",
                     id=str(i), metadata={"url": f"https://times.example.com/{i}"}) for i in range(4)]
    other = Document(text="A page of another site.\nSubscribe-free footer of the Example Times", id="x",
                     metadata={"url": "https://other.example.org/"})
    step = LineCleaner(patterns=False)
    out = {d.id: d.text for d in step.run(iter(docs + [other]))}
    assert out["0"] == "Article 0 says something different about topic 0."
    assert out["x"].endswith("Example Times")  # once on its site: kept
    assert funnel_of(step).lines_removed == {"repeated_across_documents": 4}


def test_page_of_only_boilerplate_is_dropped():
    step = LineCleaner()
    assert not list(step.run(iter([Document(text="登录\n注册\n版权所有 © 2023", id="p", metadata={})])))
    assert funnel_of(step).dropped == {"no_lines_left": 1}


def test_trafilatura_eval_pages_lose_their_boilerplate_keep_their_text(shared):
    """trafilatura's CJK/Russian evaluation pages: every `with` string stays, every `without` string
    that extraction let through (look-alike Cyrillic ads, a copyright notice) goes."""
    root = shared("zh-extraction", "test-pages", "trafilatura")
    entries = [json.loads(line) for line in (root / "evaldata_cjk_ru.jsonl").open()]
    docs = []
    for e in entries:
        text, _ = decode((root / e["file"]).read_bytes())
        docs.append(Document(text=text, id=e["file"], metadata={"url": e["url"]}))
    extracted = {d.id: d for d in TrafilaturaExtractor(timeout=30).run(iter(docs))}
    before = {k: d.text for k, d in extracted.items()}
    cleaned = {d.id: d.text for d in LineCleaner().run(iter(extracted.values()))}
    for e in entries:
        assert all(s in cleaned[e["file"]] for s in e["with"] if s in before[e["file"]]), e["file"]
        assert not any(s in cleaned[e["file"]] for s in e["without"]), e["file"]
    assert any(s in before[e["file"]] for e in entries for s in e["without"])  # there was something to remove


def test_save_removed_keeps_the_removed_lines(tmp_path):
    import gzip

    from corpus.config import config_from_dict
    from corpus.pipeline import Runner

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "z", "text": "登录\n" + ARTICLE + "\n版权所有 © 2023"}, ensure_ascii=False) + "\n")
    cfg = config_from_dict({"output_dir": str(tmp_path / "out"), "save_removed": True,
                            "steps": [{"jsonl_reader": {"paths": [str(src)]}}, {"line_cleaner": {}}, {"jsonl_writer": {}}]})
    summary = Runner(cfg).run()
    assert summary["steps"][1]["lines_removed"] == {"boilerplate_login": 1, "boilerplate_copyright": 1}
    (saved,) = (tmp_path / "out" / "removed").glob("02-line_cleaner/*.jsonl.gz")
    row = json.loads(gzip.open(saved, "rt").read())
    assert row["id"] == "z#lines" and row["text"] == "登录\n版权所有 © 2023"
    assert row["metadata"]["removed_lines"] == ["boilerplate_login", "boilerplate_copyright"]


def _related_page(lang: str) -> tuple[list[str], list[str]]:
    """(article paragraphs, related block) of real text: the article from one source, the
    teasers (a title and a snippet cut with an ellipsis, a date or a count) from others."""
    import re

    from tests.conftest import shared_path

    if lang == "zh":
        texts = []
        for path in sorted(shared_path("zh-extraction", "pages", "cleaned").glob("*.txt")):
            paras = [re.sub(r"\s+", "", p) for p in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))]
            texts.append([p for p in paras if len(p) >= 40])
        article = [p for p in max(texts, key=len)][:7]
        sources = [p for t in texts for p in t if p not in article]
        teasers = [f"{p[:12]} {p[12:40]}....." if i % 3 else f"{p[:16]} {2015 + i % 9}-0{1 + i % 9}-1{i % 10}"
                   for i, p in enumerate(sources[:60])]
        return article, ["相关文章:", *teasers]
    name = {"en": "eng_Latn", "ru": "rus_Cyrl"}[lang]
    with open(shared_path("web-quality", "hplt2-excerpts.jsonl"), encoding="utf-8") as f:
        rows = [" ".join(json.loads(line)["text"].split()) for line in f if f'"lang": "{name}"' in line]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", rows[0] + " " + rows[1]) if len(s.split()) >= 5]
    article = [" ".join(sentences[k:k + 2]) for k in range(0, min(len(sentences), 14), 2)]
    teasers = []
    for i, row in enumerate(rows[2:62]):
        words = row.split()
        title, snippet = " ".join(words[:6]), " ".join(words[6:16])
        teasers.append(f"{title} {snippet}..." if i % 3 else f"{title} ({i + 3})" if i % 2 else
                       f"{title} 12.0{1 + i % 9}.2024")
    return article, ["Related posts" if lang == "en" else "Читайте также:", *teasers]


@pytest.mark.parametrize("lang", ["zh", "en", "ru"])
def test_a_related_block_goes_as_one_and_the_article_stays(lang):
    """A real article, then a heading such as 相关文章 / Related posts / Читайте также and 60 teaser
    lines: the block goes (related_block), every article paragraph stays, and the page then
    passes web.yaml's Gopher rules (with the block, its ellipsis lines fail them)."""
    from corpus.filters.heuristics import GopherQuality

    article, block = _related_page(lang)
    assert len(article) >= 5 and len(block) == 61, (len(article), len(block))

    def gopher(text):
        return list(GopherQuality(min_doc_words=50).run(iter([Document(text=text, id=lang, metadata={"language": lang})])))

    assert not gopher("\n".join(article + block))

    def clean(lines):
        step = LineCleaner()
        out = list(step.run(iter([Document(text="\n".join(lines), id=lang, metadata={"url": f"https://{lang}.example/a"})])))
        return out[0].text, funnel_of(step).lines_removed

    alone, removed_alone = clean(article)  # what the patterns do to the article by itself (real text)
    text, removed = clean(article + block)
    assert len(alone.split("\n")) >= 5 and text == alone
    assert removed == {**removed_alone, "related_block": 61}
    assert gopher(text)
