"""HTML to main text with trafilatura 2.x.

Unlike datatrove's ``Trafilatura`` step, a broken installation (trafilatura or lxml_html_clean
missing, a failing lxml) stops the run at once with the import error instead of counting every
page as a timeout. Per page, extraction runs in datatrove's sandboxed child process with a
timeout, and failures are counted by reason: ``timeout``, ``crashed``, ``error``, ``no_text``,
``too_large``.
"""

from __future__ import annotations

import functools

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


@register("trafilatura")
class TrafilaturaExtractor(Funnel, PipelineStep):
    """Main text of HTML documents (trafilatura 2.x). Plain-text documents (WET records) pass through."""

    name = "⛏ trafilatura"
    type = "🛢 - EXTRAC"
    makes_text = True  # the runner's save_raw copies documents after the readers and this

    def __init__(
        self,
        timeout: float = 5.0,
        favor_precision: bool = True,
        include_tables: bool = True,
        include_comments: bool = False,
        deduplicate: bool = False,
        max_html_bytes: int = 5_000_000,
    ):
        super().__init__()
        self.timeout = timeout
        self.max_html_bytes = max_html_bytes
        self.options = dict(
            favor_precision=favor_precision,
            include_tables=include_tables,
            include_comments=include_comments,
            deduplicate=deduplicate,
            output_format="txt",
        )

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        check_trafilatura(self.options)
        extract_fn = functools.partial(_extract, **self.options)
        errors_logged = 0
        with ExtractorSandbox(timeout=self.timeout, warmup_text=_PROBE) as sandbox:
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
                    try:
                        text = sandbox.process_document(doc.text, extract_fn)
                    except TimeoutError:
                        self.skipped("timeout")
                        logger.warning(f"trafilatura: timeout after {self.timeout}s on {doc.metadata.get('url', doc.id)}")
                        continue
                    except EOFError:
                        self.skipped("crashed")
                        logger.warning(f"trafilatura: extractor process died on {doc.metadata.get('url', doc.id)}")
                        continue
                    except (ImportError, ModuleNotFoundError) as e:
                        raise ExtractorSetupError(f"trafilatura setup failure: {e}") from e
                    except Exception as e:
                        self.skipped("error")
                        if errors_logged < 5:
                            errors_logged += 1
                            logger.warning(f"trafilatura: {e} on {doc.metadata.get('url', doc.id)}")
                        continue
                if not text or not text.strip():
                    self.dropped("no_text")
                    continue
                doc.text = text
                doc.metadata["content_type"] = "text/plain"
                self.kept()
                self.update_doc_stats(doc)
                yield doc
