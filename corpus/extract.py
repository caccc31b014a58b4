"""HTML to main text: ``html_extract`` (resiliparse's main-content pass, trafilatura 2.x only where
that pass is unsure; the default of the web recipe) and ``trafilatura`` (trafilatura on every page).

Unlike datatrove's ``Trafilatura`` step, a broken installation (trafilatura or lxml_html_clean
missing, a failing lxml) stops the run at once with the import error instead of counting every
page as a timeout. Per page, extraction runs in datatrove's sandboxed child process with a
timeout (resiliparse's main-content pass, too, is quadratic in the nesting depth of a page), and
failures are counted by reason: ``timeout``, ``crashed``, ``error``, ``no_text``, ``too_large``.
Speed and main-text F1 of both against datatrove's step: ``python bench/extract.py``.
"""

from __future__ import annotations

import functools
import re

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.extractors.base import ExtractorSandbox
from loguru import logger

from corpus.core.funnel import Funnel
from corpus.core.registry import register


_PROBE = "<html><body><article><p>" + "Extraction probe sentence for corpus. " * 8 + "</p></article></body></html>"


class ExtractorSetupError(RuntimeError):
    """The extractor cannot run at all (missing module, broken library): never a per-page skip."""


def _extract(html: str, **options) -> str | None:
    from trafilatura import extract

    return extract(html, **options)


def trafilatura_options(favor_precision: bool, include_tables: bool, include_comments: bool, deduplicate: bool) -> dict:
    """trafilatura.extract's keyword arguments for the steps' parameters, plain text out."""
    return dict(favor_precision=favor_precision, include_tables=include_tables, include_comments=include_comments,
                deduplicate=deduplicate, output_format="txt")


def check_trafilatura(options: dict) -> None:
    """Import trafilatura and extract a known page, raising ExtractorSetupError on any failure."""
    try:
        import trafilatura  # noqa: F401
        from trafilatura import extract  # noqa: F401
    except Exception as e:  # ImportError, or lxml.html.clean's ImportError at import time
        raise ExtractorSetupError(
            f"trafilatura cannot be imported ({type(e).__name__}: {e}). "
            "Install it with: pip install 'trafilatura>=2,<3' lxml_html_clean"
        ) from e
    try:
        out = _extract(_PROBE, **options)
    except Exception as e:
        raise ExtractorSetupError(f"trafilatura fails on a trivial page ({type(e).__name__}: {e})") from e
    if not out or "Extraction probe" not in out:
        raise ExtractorSetupError(f"trafilatura returned {out!r} for a trivial page: broken installation or options")


class SandboxedExtractor(Funnel, PipelineStep):
    """What both extraction steps share: plain-text documents pass through, pages over
    ``max_html_bytes`` are skipped, each page is extracted in datatrove's sandboxed child process
    with a ``timeout`` (``_text``), failures are counted by reason, and a page without text is
    dropped. A subclass says how to check its libraries and what the sandbox runs (``_setup``),
    and how a page becomes text (``_text``)."""

    type = "🛢 - EXTRAC"
    makes_text = True  # the runner's save_raw copies documents after the readers and this

    def __init__(self, timeout: float, max_html_bytes: int):
        super().__init__()
        self.timeout, self.max_html_bytes = timeout, max_html_bytes

    def _setup(self) -> tuple[object, object]:
        """Check the libraries (ExtractorSetupError); return (what the sandbox runs, its warm-up input)."""
        raise NotImplementedError

    def _text(self, sandbox: ExtractorSandbox, fn, doc) -> tuple[str | None, str | None]:
        """(main text, None) or (None, skip reason)."""
        raise NotImplementedError

    def _call(self, sandbox: ExtractorSandbox, fn, payload, doc, what: str) -> tuple[object, str | None]:
        """(result, None), or (None, failure reason) for a timeout, a dead process or an error."""
        try:
            return sandbox.process_document(payload, fn), None
        except TimeoutError:
            logger.warning(f"{what}: timeout after {self.timeout}s on {doc.metadata.get('url', doc.id)}")
            return None, "timeout"
        except EOFError:
            logger.warning(f"{what}: extractor process died on {doc.metadata.get('url', doc.id)}")
            return None, "crashed"
        except (ImportError, ModuleNotFoundError) as e:
            raise ExtractorSetupError(f"{what} setup failure: {e}") from e
        except Exception as e:
            if self._errors_logged < 5:
                self._errors_logged += 1
                logger.warning(f"{what}: {e} on {doc.metadata.get('url', doc.id)}")
            return None, "error"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        fn, warmup = self._setup()
        self._errors_logged = 0
        with ExtractorSandbox(timeout=self.timeout, warmup_text=warmup) as sandbox:
            for doc in data:
                self.received()
                if doc.metadata.get("content_type") == "text/plain":
                    self.kept()
                    self.stat_update("passed_plain_text")
                    yield doc
                    continue
                if len(doc.text) > self.max_html_bytes:
                    self.skipped("too_large")
                    continue
                with self.track_time():
                    text, failure = self._text(sandbox, fn, doc)
                if failure is not None:
                    self.skipped(failure)
                    continue
                if not text or not text.strip():
                    self.dropped("no_text")
                    continue
                doc.text = text
                doc.metadata["content_type"] = "text/plain"
                self.kept()
                self.update_doc_stats(doc)
                yield doc


@register("trafilatura")
class TrafilaturaExtractor(SandboxedExtractor):
    """Main text of HTML documents (trafilatura 2.x). Plain-text documents (WET records) pass through."""

    name = "⛏ trafilatura"

    def __init__(
        self,
        timeout: float = 5.0,
        favor_precision: bool = True,
        include_tables: bool = True,
        include_comments: bool = False,
        deduplicate: bool = False,
        max_html_bytes: int = 5_000_000,
    ):
        super().__init__(timeout, max_html_bytes)
        self.options = trafilatura_options(favor_precision, include_tables, include_comments, deduplicate)

    def _setup(self):
        check_trafilatura(self.options)
        return functools.partial(_extract, **self.options), _PROBE

    def _text(self, sandbox, fn, doc):
        return self._call(sandbox, fn, doc.text, doc, "trafilatura")


# ---------------------------------------------------------------- fast main text, trafilatura where unsure

# Scripts written without spaces between words: a character counts as a third of a word there
# (30 characters make the 10 "words" of a paragraph). Hangul is spaced, so it is not here.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]")
_WORD = re.compile(r"[^\W_]+")
# a sentence mark: end punctuation (Latin, Cyrillic, Arabic, Urdu, Devanagari) before a space or the
# line's end, or a CJK one
_SENTENCE = re.compile(r"[.!?;؟۔।](?:\s|$)|[。！？，；]")
_BLANK_RUNS = re.compile(r"\n{3,}")


def line_words(line: str) -> float:
    """Words in a line; a character of an unspaced script (Chinese, Japanese, Thai...) counts 1/3."""
    unspaced = len(_UNSPACED.findall(line))
    return len(_WORD.findall(_UNSPACED.sub(" ", line) if unspaced else line)) + unspaced / 3


def main_text(text: str, paragraph_words: int = 10, min_words: int = 20,
              max_short_share: float = 0.7) -> tuple[str, str | None]:
    """Tidy resiliparse's main-content text and judge it: ``(text, None)`` when sure, or
    ``(text, reason)`` when trafilatura should look at the page.

    Lines are stripped and runs of blank lines collapsed. A *paragraph* is a line of at least
    ``paragraph_words`` words with a sentence mark; lines before the first paragraph and after
    the last (headers, navigation, footers) are cut, unless that would cut half the text or
    more (then the text is not paragraphs framed by boilerplate: a poem, a forum thread, a
    listing, and it is kept whole). Unsure: ``short_output`` (under ``min_words`` words; the
    step does not ask trafilatura when the page's whole visible text is that short too),
    ``short_lines`` (more than ``max_short_share`` of the words in lines shorter than a
    paragraph: lists, menus, link blocks rather than prose)."""
    lines = [line.strip() for line in text.splitlines()]
    words = [line_words(line) for line in lines]
    total = sum(words)
    paragraphs = [i for i, (line, n) in enumerate(zip(lines, words)) if n >= paragraph_words and _SENTENCE.search(line)]
    if paragraphs:
        first, last = paragraphs[0], paragraphs[-1]
        if sum(words[first:last + 1]) >= 0.5 * total:
            lines, words = lines[first:last + 1], words[first:last + 1]
    out = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
    kept = sum(words)
    if kept < min_words:
        return out, "short_output"
    if sum(n for n in words if n < paragraph_words) > max_short_share * kept:
        return out, "short_lines"
    return out, None


# resiliparse's main-content mode takes a text node of one 3-byte UTF-8 character for an icon-font
# glyph and drops it: a Chinese or Japanese character alone in a link, <span> or <ruby>. A
# zero-width space after it keeps it (and is removed from the text).
_LONE_WIDE_CHAR = re.compile(r">([\u0800-\ud7ff\uf900-\uffff])<")


def _fast(html: str, **options) -> tuple[str, str | None]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(_LONE_WIDE_CHAR.sub(">\\1\u200b<", html))
    text = extract_plain_text(tree, main_content=True, preserve_formatting=True,
                              alt_texts=False, comments=False, skip_elements=["rt", "rp"])  # no furigana
    text, unsure = main_text(text.replace("\u200b", ""), **options)
    if unsure == "short_output":  # unless the whole page has no more text: nothing for trafilatura to find
        visible = extract_plain_text(tree, main_content=False, alt_texts=False, skip_elements=["rt", "rp"])
        if line_words(visible.replace("\u200b", "")) < options.get("min_words", 20):
            return text, None
    return text, unsure


def _route(mode: str, html: str, fast_options: dict, trafilatura_options: dict):
    """What the sandboxed process runs: the fast pass, or trafilatura (``mode``)."""
    if mode == "fast":
        return _fast(html, **fast_options)
    return _extract(html, **trafilatura_options)


def check_resiliparse() -> None:
    """Import resiliparse and extract a known page, raising ExtractorSetupError on any failure."""
    try:
        text, _ = _fast(_PROBE)
    except ImportError as e:
        raise ExtractorSetupError(f"resiliparse cannot be imported ({type(e).__name__}: {e}). "
                                  "Install it with: pip install resiliparse") from e
    except Exception as e:
        raise ExtractorSetupError(f"resiliparse fails on a trivial page ({type(e).__name__}: {e})") from e
    if "Extraction probe" not in text:
        raise ExtractorSetupError(f"resiliparse returned {text!r} for a trivial page: broken installation")


@register("html_extract")
class HtmlExtractor(SandboxedExtractor):
    """Main text of HTML documents, fast: resiliparse's main-content pass, and trafilatura 2.x
    only for the pages that pass is unsure of (``main_text``'s rules). Plain-text documents
    (WET records) pass through. Both run in a sandboxed child process with a per-page timeout.

    On an unsure page trafilatura's text is used unless it has under half the characters of the
    fast pass's (trafilatura's precision mode sometimes drops most of a page); if trafilatura
    times out, crashes or fails there, the fast text is kept. Pages of more than
    ``fallback_max_tags`` tags (a site's full index, a table of contents of a whole manual) keep the
    fast text: trafilatura takes seconds on them (4 s for 70,000 tags, 11 s for 98,000). A page
    on which the fast pass itself fails goes to trafilatura whole. Counters: ``unsure_<reason>``,
    ``fallback_used``, ``fallback_kept_fast``, ``fallback_skipped_large``,
    ``fallback_failed_<reason>``, ``fast_failed_<reason>``."""

    name = "⛏ html_extract"

    def __init__(
        self,
        timeout: float = 5.0,
        fallback: bool = True,
        paragraph_words: int = 10,
        min_words: int = 20,
        max_short_share: float = 0.7,
        fallback_max_tags: int = 50_000,
        favor_precision: bool = True,
        include_tables: bool = True,
        include_comments: bool = False,
        deduplicate: bool = False,
        max_html_bytes: int = 5_000_000,
    ):
        super().__init__(timeout, max_html_bytes)
        self.fallback = fallback
        self.fallback_max_tags = fallback_max_tags
        self.fast_options = dict(paragraph_words=paragraph_words, min_words=min_words, max_short_share=max_short_share)
        self.trafilatura_options = trafilatura_options(favor_precision, include_tables, include_comments, deduplicate)

    def _run(self, sandbox: ExtractorSandbox, fn, mode: str, doc) -> tuple[object, str | None]:
        return self._call(sandbox, fn, (mode, doc.text), doc, f"html_extract: {mode}")

    def _text(self, sandbox: ExtractorSandbox, fn, doc) -> tuple[str | None, str | None]:
        """(main text, None) or (None, skip reason)."""
        result, failure = self._run(sandbox, fn, "fast", doc)
        if failure is not None:
            self.stat_update(f"fast_failed_{failure}")
            if not self.fallback:
                return None, failure
            text, failure = self._run(sandbox, fn, "trafilatura", doc)
            return (text or "", None) if failure is None else (None, failure)
        text, unsure = result
        if unsure is None or not self.fallback:
            return text, None
        self.stat_update(f"unsure_{unsure}")
        if doc.text.count("<") > self.fallback_max_tags:
            self.stat_update("fallback_skipped_large")
            return text, None
        other, failure = self._run(sandbox, fn, "trafilatura", doc)
        if failure is not None:
            self.stat_update(f"fallback_failed_{failure}")
            return (text, None) if text else (None, failure)
        if other and len(other.strip()) >= 0.5 * len(text):
            self.stat_update("fallback_used")
            return other, None
        self.stat_update("fallback_kept_fast")
        return text, None

    def _setup(self):
        check_resiliparse()
        if self.fallback:
            check_trafilatura(self.trafilatura_options)
        # the sandbox forks from this process, where check_trafilatura has already run trafilatura once
        return (functools.partial(_route, fast_options=self.fast_options, trafilatura_options=self.trafilatura_options),
                ("fast", _PROBE))
