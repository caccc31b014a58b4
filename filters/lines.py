"""Line-level cleaning: remove boilerplate lines and keep the article.

Two signals, both counted per reason in the funnel (``lines removed``):

- **patterns** (``boilerplate_*``): short lines that are navigation (breadcrumbs, menus of
  separated items), login/app/VIP prompts, share and "related articles" blocks, copyright,
  ICP licence and public-security filing lines, cookie banners, customer-service and "report
  an error" footers; in Chinese (simplified and traditional), Japanese, Korean, Russian and
  English. A line is only a candidate when it is short (at most ``max_line_chars``
  characters, a third of that in Chinese, Japanese and Korean), so an article sentence that
  mentions "copyright" stays.
- **look-alike letters** (``obfuscated_letters``): lines whose words mix Latin and Cyrillic
  letters, a trick that hides ads from filters, whatever their length.
- **related-content blocks** (``related_block``): a short heading such as 相关文章, 猜你喜欢, 热门推荐,
  Related posts or Читайте также, followed by at least two teaser lines (each ending in an
  ellipsis, a date or a count; a short title counts when a teaser follows it), goes as one
  block up to the first other line.
- **repetition** (``repeated_across_documents``, CCNet's idea): a line that appears in at least
  ``min_documents`` documents of the same site (``metadata.url``'s host, else the source
  file) within a window of ``window`` documents of a task is the site's template, not its
  content.

A document left without lines is dropped (``no_lines_left``). With ``save_removed``, each
cleaned document's removed lines go to ``removed/`` as a document of their own (id
``<id>#lines``, ``metadata.removed_lines`` giving each line's reason).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from urllib.parse import urlsplit

import regex
from datatrove.data import Document, DocumentsPipeline

from corpus.core.funnel import Filter
from corpus.core.registry import register

_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")

# (reason, pattern): each pattern is searched in a short line, case-insensitively
PATTERNS = [
    ("boilerplate_login", r"登录|登錄|注册|註冊|未登[录錄]|请先登|請先登|忘记密码|忘記密碼|"
                          r"打开\s*APP|打開\s*APP|下载\s*APP|下載\s*APP|APP内|APP內|客户端|客戶端|扫码|掃碼|二维码|二維碼|"
                          r"开通\s*VIP|開通\s*VIP|VIP会员|VIP會員|会员专享|會員專享|充值|"
                          r"ログイン|会員登録|로그인|회원가입|"
                          r"\bsign ?(in|up)\b|\blog ?in\b|\bregister\b|\bsubscribe\b|download (the|our) app|open in app|"
                          r"войти|вход\b|регистрац|подписаться"),
    ("boilerplate_share", r"分享到|分享至|转发|轉發|收藏本|点赞|點贊|关注我们|關注我們|关注公众号|關注公眾號|"
                          r"关注.{0,6}(网|微博|微信)|微信扫|微信掃|"
                          r"シェア|ツイート|공유하기|"
                          r"\bshare (this|on)\b|\btweet\b|follow us|поделиться"),
    ("boilerplate_related", r"相关(文章|阅读|新闻|推荐|链接)|相關(文章|閱讀|新聞|推薦|連結)|推荐阅读|推薦閱讀|热门(推荐|文章|新闻)|"
                            r"熱門(推薦|文章|新聞)|延伸阅读|延伸閱讀|猜你喜欢|猜你喜歡|上一篇|下一篇|阅读全文|閱讀全文|展开全文|"
                            r"展開全文|点击(查看|进入|阅读)|點擊(查看|進入|閱讀)|更多(精彩|内容|內容|新闻|新聞)|"
                            r"関連記事|関連ニュース|관련 ?기사|"
                            r"related (articles|posts|stories)|read more|you may also like|recommended for you|"
                            r"(previous|next) (post|article)|похожие (статьи|материалы)|читайте также"),
    ("boilerplate_copyright", r"©|\(c\)\s*\d{4}|copyright|all rights reserved|版权所有|版權所有|版权声明|版權聲明|"
                              r"未经(授权|许可|允许)|未經(授權|許可|允許)|禁止(转载|复制|轉載|複製)|免责声明|免責聲明|"
                              r"ICP\s*(备|備|证|證)|ICP\d|公网安备|公網安備|网安备|增值电信|"
                              r"無断転載|무단 ?전재|все права защищены"),
    ("boilerplate_cookies", r"cookie|куки|使用\s*cookie|Cookie"),
    ("boilerplate_service", r"客服|联系我们|聯繫我們|聯絡我們|投诉|投訴|举报|舉報|纠错|糾錯|责任编辑|責任編輯|编辑：|編輯：|"
                            r"网站地图|網站地圖|广告服务|廣告服務|关于我们|關於我們|"
                            r"お問い合わせ|문의하기|contact us|privacy policy|terms of (use|service)|"
                            r"политика конфиденциальности|контакты"),
    ("boilerplate_navigation", r"^(首页|首頁|主页|主頁|home|главная)\s*[>›»/|\-]|^\s*当前位置|^\s*當前位置|^\s*您的位置|"
                               r"^\s*(返回|回到)(顶部|頂部|首页|首頁)|back to top|наверх"),
]
_COMPILED = [(reason, regex.compile(pattern, regex.I)) for reason, pattern in PATTERNS]
_MENU_SEPARATORS = regex.compile(r"\s*[|｜·•›»]\s*|\s{2,}|\s+/\s+")
# a word that mixes Latin and Cyrillic letters ("Соntасt uѕ"): look-alikes that hide ads from filters
_MIXED_WORD = regex.compile(r"\b(?=\w*\p{Latin})(?=\w*\p{Cyrillic})\w+\b")
# a heading that opens a block of teasers for other pages ("相关文章:", "Related posts", "Читайте также")
_RELATED_HEADING = regex.compile(
    r"^\W*(相关|相關)(文章|阅读|閱讀|新闻|新聞|推荐|推薦|内容|內容|资讯|資訊)|^\W*(猜你喜欢|猜你喜歡|热门推荐|熱門推薦|推荐阅读|推薦閱讀|"
    r"热门文章|熱門文章|延伸阅读|延伸閱讀|精彩推荐|精彩推薦|你可能(还|也)?(喜欢|感兴趣))|^\W*(関連記事|関連ニュース|관련 ?기사)|"
    r"^\W*(related (articles|posts|stories|reading|content)|you (may|might) also (like|enjoy)|recommended (for you|reading|posts)|"
    r"more (stories|posts|articles)|popular posts|further reading|read (also|next))|"
    r"^\W*(читайте также|похожие (статьи|материалы|записи|новости)|другие (статьи|новости|материалы)|рекомендуем)",
    regex.I)
# how a teaser line ends: an ellipsis, a date, or a count (views, comments)
_TEASER_END = regex.compile(
    r"(\.{2,}|…+\.*|。{2,})\s*$"
    r"|(\d{4}\s*[-/.年]\s*\d{1,2}(\s*[-/.月]\s*\d{1,2}\s*日?)?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}[-/]\d{1,2}"
    r"|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2},? \d{4}|\d{1,2} \p{Cyrillic}+ \d{4}( г\.?)?)"
    r"(\s+\d{1,2}:\d{2})?\s*[)）\]】]?\s*$"
    r"|([(（\[【]\s*\d+\s*[)）\]】]|\d+\s*(次|人|条|條|阅读|閱讀|浏览|瀏覽|评论|評論|views?|comments?|reads?|"
    r"просмотр\w*|комментари\w*)|(阅读|閱讀|浏览|瀏覽|评论|評論|views?|comments?)\s*[:：]?\s*\d+)\s*$",
    regex.I)
_COPYRIGHT_START = regex.compile(r"^\s*(©|\(c\)|copyright|版权|版權|著作権|저작권|©)", regex.I)


def line_reason(line: str, max_chars: int) -> str | None:
    """Why a line is boilerplate, or None: the patterns, then a menu of short separated items."""
    stripped = line.strip()
    if not stripped:
        return None
    words = stripped.split()
    if len(words) >= 3 and len(_MIXED_WORD.findall(stripped)) >= max(2, len(words) // 3):
        return "obfuscated_letters"
    cjk = len(_CJK.findall(stripped[:200])) > len(stripped[:200]) / 3
    if len(stripped) > (max_chars // 3 if cjk else max_chars):
        # a copyright notice runs long ("© 2022, ... Written permission must be obtained ...")
        return "boilerplate_copyright" if _COPYRIGHT_START.match(stripped) and len(stripped) <= 3 * max_chars else None
    for reason, pattern in _COMPILED:
        if pattern.search(stripped):
            return reason
    if stripped.startswith("|") and stripped.endswith("|"):
        return None  # a table row (the extractor writes tables so), not a menu
    items = [i for i in _MENU_SEPARATORS.split(stripped) if i]
    if len(items) >= 4 and max(map(len, items)) <= (6 if cjk else 20) and not regex.search(r"[。．.!?！？]$", stripped):
        return "boilerplate_navigation"
    return None


def _site(doc: Document) -> str:
    url = doc.metadata.get("url")
    if url:
        with contextlib.suppress(ValueError):
            return urlsplit(url).hostname or url
    return str(doc.metadata.get("source", ""))


def _key(line: str) -> bytes:
    return hashlib.blake2b(" ".join(line.split()).lower().encode("utf-8", "surrogatepass"), digest_size=8).digest()


@register("line_cleaner")
class LineCleaner(Filter):
    """Removes boilerplate lines (navigation, login/app/VIP prompts, share and related blocks,
    copyright and ICP lines, cookie banners, service footers) and lines repeated across
    documents of the same site; keeps the rest of the document. Lines removed are counted by
    reason; a document left empty is dropped."""

    name = "🧹 line_cleaner"

    def __init__(self, patterns: bool = True, max_line_chars: int = 120, repeated: bool = True,
                 min_documents: int = 3, window: int = 2000, max_repeated_chars: int = 300):
        super().__init__()
        if max_line_chars < 1 or min_documents < 2 or window < 1 or max_repeated_chars < 1:
            raise ValueError("max_line_chars, window and max_repeated_chars must be at least 1, min_documents at least 2")
        self.patterns, self.max_line_chars, self.repeated = patterns, max_line_chars, repeated
        self.min_documents, self.window, self.max_repeated_chars = min_documents, window, max_repeated_chars

    def clean(self, doc: Document, repeated: set[bytes]) -> list[tuple[str, str]]:
        """Remove the boilerplate lines of ``doc`` in place; returns (reason, line) of each removed."""
        kept, removed = [], []
        lines = doc.text.split("\n")
        related = self._related_blocks(lines) if self.patterns else set()
        for i, line in enumerate(lines):
            if i in related:
                removed.append(("related_block", line))
                continue
            reason = line_reason(line, self.max_line_chars) if self.patterns else None
            if reason is None and repeated and line.strip() and len(line) <= self.max_repeated_chars \
                    and _key(line) in repeated:
                reason = "repeated_across_documents"
            if reason is None:
                kept.append(line)
            else:
                removed.append((reason, line))
        if removed:
            doc.text = "\n".join(kept).strip("\n")
        return removed

    def _related_blocks(self, lines: list[str]) -> set[int]:
        """Lines of related-content blocks: a short heading such as 相关文章 / 猜你喜欢 / Related posts /
        Читайте также, then teaser lines (short, each ending in an ellipsis, a date or a count; a
        short title line counts when a teaser follows it), up to the first other line. A heading
        followed by no teaser is left to the patterns."""
        out: set[int] = set()
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            if not line or len(line) > self.max_line_chars // 2 or not _RELATED_HEADING.search(line):
                i += 1
                continue
            block, j = [i], i + 1
            while j < len(lines):
                text = lines[j].strip()
                if not text:
                    j += 1
                    continue
                if self._teaser(text) or (self._short(text) and self._next_is_teaser(lines, j)):
                    block.append(j)
                    j += 1
                    continue
                break
            if len(block) >= 3:  # the heading and at least two teasers
                out.update(block)
            i = j if len(block) >= 3 else i + 1
        return out

    def _teaser(self, text: str) -> bool:
        return len(text) <= 2 * self.max_line_chars and bool(_TEASER_END.search(text))

    def _short(self, text: str) -> bool:
        cjk = len(_CJK.findall(text)) > len(text) / 3
        return len(text) <= (self.max_line_chars // 3 if cjk else self.max_line_chars // 2)

    def _next_is_teaser(self, lines: list[str], j: int) -> bool:
        for later in lines[j + 1:]:
            if later.strip():
                return self._teaser(later.strip())
        return False

    def _repeated_lines(self, docs: list[Document]) -> dict[str, set[bytes]]:
        """Per site, the keys of short lines that occur in at least ``min_documents`` documents."""
        counts: dict[str, Counter] = {}
        for doc in docs:
            keys = {_key(line) for line in doc.text.split("\n") if line.strip() and len(line) <= self.max_repeated_chars}
            counts.setdefault(_site(doc), Counter()).update(keys)
        return {site: {k for k, n in c.items() if n >= self.min_documents} for site, c in counts.items()}

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            window: list[Document] = []
            for doc in data:
                self.received()
                window.append(doc)
                if len(window) >= self.window:
                    yield from self._flush(window, rank, writer)
                    window = []
            yield from self._flush(window, rank, writer)

    def _flush(self, docs: list[Document], rank: int, writer) -> DocumentsPipeline:
        with self.track_time():
            repeated = self._repeated_lines(docs) if self.repeated and len(docs) >= self.min_documents else {}
        for doc in docs:
            with self.track_time():
                removed = self.clean(doc, repeated.get(_site(doc), set()))
            for reason, n in Counter(reason for reason, _ in removed).items():
                self.lines_removed(reason, n)
            if removed and writer is not None:
                writer.write(Document(text="\n".join(line for _, line in removed), id=f"{doc.id}#lines",
                                      metadata={**doc.metadata, "filter_reason": "lines_removed",
                                                "removed_lines": [reason for reason, _ in removed]}), rank)
            if not doc.text.strip():
                self.dropped("no_lines_left")
                if writer is not None:
                    writer.write(doc, rank)
                continue
            self.kept()
            self.update_doc_stats(doc)
            yield doc

    def filter(self, doc: Document) -> bool:  # the step works on windows of documents (run)
        return True
