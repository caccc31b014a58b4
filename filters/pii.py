"""Personal data and secrets out of the text: ``pii_redactor``.

Each type is found by a cheap pattern that proposes candidates, then confirmed by a library
made for it, so that dates, prices, versions and order numbers stay:

- ``email``: an address pattern (local part, @, a domain with a letter top-level label);
- ``phone``: runs of at least 7 digits with the separators numbers are written with, confirmed
  by Google's libphonenumber (``phonenumbers``' matcher at leniency VALID, which also refuses
  dates and times): numbers with a ``+`` country code anywhere, others as numbers of
  ``regions`` (default CN, US, GB, RU, DE, JP);
- ``ip``: IPv4 and IPv6 addresses that ``ipaddress`` accepts, public ones only unless
  ``private_ip``;
- ``cn_id``: 18-character Chinese resident ID numbers with a valid birth date and check digit
  (``python-stdnum``'s ``cn.ric``);
- ``card``: 13 to 19 digits, in one run or in groups, of a card network's prefix, that pass Luhn;
- ``iban``: IBANs that pass ISO 13616's check (``stdnum.iban``);
- ``secret``: credentials in URLs (``user:password@``) and well-known key shapes (AWS access
  keys, GitHub, Slack, Google API, Stripe and OpenAI-style keys, PEM private keys).

``replace: placeholder`` (the default) puts ``<EMAIL>``, ``<PHONE>``, ``<IP>``, ``<CN_ID>``,
``<CARD>``, ``<IBAN>`` or ``<SECRET>`` in place and keeps the document; the funnel counts the
redactions per type like removed lines (``pii_email``...). ``replace: drop_document`` drops
every document with any of them (reason ``pii``). With ``save_removed``, the original of each
changed document goes to ``removed/`` for audit (``metadata.pii``: the types and counts), never
to the curated documents.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Literal

import regex
from datatrove.data import Document, DocumentsPipeline

from corpus.core.funnel import Filter
from corpus.core.registry import register

TYPES = ("email", "phone", "ip", "cn_id", "card", "iban", "secret")
REGIONS = ("CN", "US", "GB", "RU", "DE", "JP")

EMAIL = regex.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+\p{L}{2,24}"
                      r"(?![\w-])")
# a phone candidate: an optional +, then digits with the separators numbers are written with
# (one separator between digits, or a bracket with a space: "8 (912) 345-67-89"; two spaces end a number)
PHONE = regex.compile(r"(?<![\w+])\+?(?:\(\d{1,4}\)[ \u00a0\u3000.\-]?)?\d"
                      r"(?:(?:[ \u00a0\u3000.\-/]|[ \u00a0]?\(|\)[ \u00a0\-]?)?\d){6,16}(?![\w])")
IPV4 = regex.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)")
IPV6 = regex.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
CN_ID = regex.compile(r"(?<!\d)\d{17}[\dXx](?![\dA-Za-z])")
CARD = regex.compile(r"(?<![\d-])(?:\d{4}[ -]){3,4}\d{1,4}(?![\d-])|(?<![\d-])\d{13,19}(?![\d-])")
IBAN = regex.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
SECRET = regex.compile(
    r"(?<=://)[^\s/:@]{1,64}:[^\s/@]{1,128}(?=@)"  # user:password in a URL
    r"|(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{40,255}\b"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,72}\b"  # Slack
    r"|\bAIza[0-9A-Za-z_-]{35}\b"  # Google API key
    r"|\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,99}\b"  # Stripe
    r"|\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b"  # OpenAI-style
    r"|-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]{16,8192}?-----END (?:[A-Z]+ )*PRIVATE KEY-----")
PHONE_CONTEXT = 12  # characters on each side of a candidate that the phone matcher sees
_CONTEXT_CUT = regex.compile(r"\s+(?=[\d(+])|(?<=\d)\s+|\s{2,}")
# a number written with spaces, hyphens or brackets, or with +, looks like a phone number by itself;
# one written as bare digits or with dots needs a word that says so before it
PHONE_WORDS = regex.compile(r"电话|電話|手机|手機|联系|聯繫|致电|致電|热线|熱線|传真|傳真|座机|座機|微信|客服|"
                            r"\b(tel|phone|mobile|cell|call|fax|whatsapp|hotline|contact)\b|телефон|тел\.|звоните|факс|"
                            r"電話番号|携帯|연락처|전화", regex.I)


def _strong_phone(s: str) -> bool:
    return s.startswith("+") or bool(regex.search(r"[ \u00a0\u3000\-()/]", s))
CARD_PREFIX = regex.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6[0245]|35|62|81)")
PLACEHOLDER = {t: f"<{t.upper()}>" for t in TYPES}
# where spans overlap, the first type in this order wins (a card is not also a phone number)
PRIORITY = {t: i for i, t in enumerate(("secret", "email", "iban", "cn_id", "card", "ip", "phone"))}


# cheap tests of a text worth searching for a type (module functions: steps are pickled to workers)
def _may_hold_secret(t: str) -> bool:
    return "-" in t or ":" in t or "_" in t or "AKIA" in t or "ASIA" in t


def _may_hold_email(t: str) -> bool:
    return "@" in t


def _may_hold_ipv4(t: str) -> bool:
    return "." in t


def _may_hold_ipv6(t: str) -> bool:
    return "::" in t or t.count(":") >= 3


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


class PiiFinder:
    """Spans of personal data and secrets in a text: ``find(text) -> [(start, end, type)]``,
    sorted and not overlapping."""

    def __init__(self, types: list[str] | tuple[str, ...] = TYPES, regions: list[str] | tuple[str, ...] = REGIONS,
                 private_ip: bool = False):
        unknown = sorted(set(types) - set(TYPES))
        if unknown:
            raise ValueError(f"unknown PII type {unknown[0]!r}; types: {', '.join(TYPES)}")
        self.types, self.private_ip = set(types), private_ip
        if "phone" in self.types:
            import phonenumbers

            bad = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
            if bad:
                raise ValueError(f"unknown phone region {bad[0]!r}: give ISO 3166 codes such as CN, US, GB")
            self._matcher, self._valid_leniency = phonenumbers.PhoneNumberMatcher, phonenumbers.Leniency.VALID
        self.regions = list(regions)
        # (type, candidate pattern, check of a candidate or None, cheap test of a text worth searching)
        rules = [("secret", SECRET, None, _may_hold_secret), ("email", EMAIL, None, _may_hold_email),
                 ("ip", IPV4, self._ip, _may_hold_ipv4), ("ip", IPV6, self._ip, _may_hold_ipv6)]
        if {"cn_id", "card", "iban"} & self.types:  # python-stdnum's check digits, imported once
            from stdnum import iban, luhn
            from stdnum.cn import ric

            self._luhn = luhn.is_valid
            rules += [("iban", IBAN, iban.is_valid, None), ("cn_id", CN_ID, ric.is_valid, None),
                      ("card", CARD, self._card, None)]
        self._rules = [rule for rule in rules if rule[0] in self.types]

    def find(self, text: str) -> list[tuple[int, int, str]]:
        spans: list[tuple[int, int, str]] = []
        for kind, pattern, valid, worth in self._rules:
            if worth is None or worth(text):
                spans += [(m.start(), m.end(), kind) for m in pattern.finditer(text) if valid is None or valid(m.group())]
        if "phone" in self.types:
            spans += self._phones(text)
        return _non_overlapping(spans)

    def _phones(self, text: str) -> list[tuple[int, int, str]]:
        out = []
        for m in PHONE.finditer(text):
            # the matcher sees the candidate with some context: it refuses dates and times by what
            # surrounds a number ("2023-10-01 12:30" is not a Washington number)
            # ... but not a number beyond a space, which its extraction would join to this one
            left, right = text[max(0, m.start() - PHONE_CONTEXT):m.start()], text[m.end():m.end() + PHONE_CONTEXT]
            left = _CONTEXT_CUT.split(left)[-1]
            right = _CONTEXT_CUT.split(right, maxsplit=1)[0]
            if not _strong_phone(m.group()) and not PHONE_WORDS.search(text[max(0, m.start() - 24):m.start()]):
                continue  # digits alone, or between dots: a timestamp, a DOI, a big number, unless named a phone
            lo = m.start() - len(left)
            window = left + m.group() + right
            best: list = []  # the region whose numbers cover most of the candidate ("8 (912) ..." is Russian
            for region in ["ZZ"] if m.group().startswith("+") else self.regions:  # whole, not a Chinese tail)
                found = [(lo + p.start, lo + p.end, "phone")
                         for p in self._matcher(window, region, leniency=self._valid_leniency)
                         if lo + p.end > m.start() and lo + p.start < m.end()]
                if sum(e - s for s, e, _ in found) > sum(e - s for s, e, _ in best):
                    best = found
                    if sum(e - s for s, e, _ in found) >= len(m.group()):
                        break
            out += best
        return out

    def _card(self, s: str) -> bool:
        digits = _digits(s)
        return 13 <= len(digits) <= 19 and bool(CARD_PREFIX.match(digits)) and self._luhn(digits)

    def _ip(self, s: str) -> bool:
        if ":" in s and sum(1 for group in s.split(":") if group) < 3:  # "x[8::]", "::2": slices, not addresses
            return False
        try:
            address = ipaddress.ip_address(s)
        except ValueError:
            return False
        return self.private_ip or address.is_global


def _non_overlapping(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Keep, where spans overlap, the one of the first type in PRIORITY (then the longest)."""
    chosen: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans, key=lambda s: (PRIORITY[s[2]], s[0] - s[1], s[0])):
        if all(end <= a or start >= b for a, b, _ in chosen):
            chosen.append((start, end, kind))
    return sorted(chosen)


def redact(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, last = [], 0
    for start, end, kind in spans:
        out += [text[last:start], PLACEHOLDER[kind]]
        last = end
    return "".join(out) + text[last:]


@register("pii_redactor")
class PiiRedactor(Filter):
    """Replaces personal data and secrets with placeholders (or drops the documents that hold
    any): e-mail addresses, phone numbers, IP addresses, Chinese resident IDs, card numbers,
    IBANs, credentials and API keys. Needs ``pip install phonenumbers python-stdnum``."""

    name = "🔏 pii_redactor"

    def __init__(self, types: list[str] | None = None, regions: list[str] | None = None,
                 replace: Literal["placeholder", "drop_document"] = "placeholder", private_ip: bool = False):
        super().__init__()
        if replace not in ("placeholder", "drop_document"):
            raise ValueError("replace must be 'placeholder' or 'drop_document'")
        try:
            self.finder = PiiFinder(types or TYPES, regions or REGIONS, private_ip)
        except ImportError as e:
            raise ImportError(f"pii_redactor needs phonenumbers and python-stdnum: pip install phonenumbers "
                              f"python-stdnum ({e})") from None
        self.replace = replace

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for doc in data:
                self.received()
                with self.track_time():
                    spans = self.finder.find(doc.text)
                counts: dict[str, int] = {}
                for _, _, kind in spans:
                    counts[kind] = counts.get(kind, 0) + 1
                if spans and writer is not None:  # the original, for audit: never among the curated documents
                    writer.write(Document(text=doc.text, id=f"{doc.id}#pii", metadata={
                        **doc.metadata, "filter_reason": "pii", "pii": counts}), rank)
                if spans and self.replace == "drop_document":
                    self.dropped("pii")
                    continue
                for kind, n in counts.items():
                    self.lines_removed(f"pii_{kind}", n)
                if spans:
                    doc.text = redact(doc.text, spans)
                self.kept()
                self.update_doc_stats(doc)
                yield doc

    def filter(self, doc: Document) -> bool:  # the step changes documents (run)
        return True
