"""Personal data and secrets out of the text: ``pii_redactor``.

Each type is found by a cheap pattern that proposes candidates, then confirmed by a library
made for it, so that dates, prices, versions and order numbers stay:

- ``email``: an address pattern (local part, @, a domain with a letter top-level label; Chinese,
  Japanese or Korean letters glued to it are the text around it, not part of it);
- ``phone``: runs of at least 7 digits with the separators numbers are written with (and an
  extension: ``x123``, ``ext. 123``), confirmed by Google's libphonenumber (``phonenumbers``'
  matcher at leniency VALID, which also refuses dates and times): numbers with a ``+`` country
  code anywhere, others as numbers of ``regions`` (default CN, US, GB, RU, DE, JP). Digits
  alone or between dots need a word that says phone before them, except a US-style
  ``555.123.4567`` and an 11-digit mobile number (``13800138000``, ``89161234567``); a dotted
  quad (an IP address, a netmask), a date, a list of small numbers, a run of four or more numbers
  of one or two digits (``10 11 12 13 14``: a count, a table row; French-style ``01 23 45 67 89``
  needs a word that says phone), an amount in thousands groups with a decimal fraction
  (``123 456 789.00``, ``1 234 567,89``) or an ISBN is no phone number; nor is a time of day or any
  part of one (``14:39:53.662522-05``; the hour before ``:mm`` is cut off a candidate, so a date
  with any 4-digit year glued to a time, ``9999-12-31 23:59``, is a date; a compact ``040506-08``),
  numbers only a slash apart (a path or a ratio, ``155151/17228``; German ``089/1234567`` has its
  trunk 0), a run of numbers a space apart that goes on past the candidate (a table or log row), a
  round number (``10000000``), a range after a word naming what is counted (``lines 1641-1650``),
  a number glued to ``=`` (a value: ``shmmax=17179869184``, ``?ln=1641-1650``), or a number before
  a bracket it does not close (``4294967294 (2^32 - 2)`` is no ``(...)`` area code);
- ``ip``: IPv4 and IPv6 addresses that ``ipaddress`` accepts, public ones only unless
  ``private_ip``; four numbers under 20, the first under 4 (``3.1.1.3``, ``1.2.0.1``), are a version,
  and so is any dotted quad after a word that names a section or a version ("section 6.4.4.2",
  "version 4.2.2.1", "п. 5.1.2.3"), starting a line as a heading's number ("6.4.4.2. Floating",
  "9.15.1.1. xmlcomment") or whose first three numbers stand alone elsewhere in the text (a release
  of that series: "3.6.23" ... "3.6.23.1"); eight groups of two hex digits are a MAC (EUI-64)
  address, not IPv6 (``08:00:2b:01:02:03:04:05``);
- ``cn_id``: 18-character Chinese resident ID numbers with a check digit, a birth date and a
  province code that are valid (``python-stdnum``'s ``cn.ric`` check digit and date; its county
  check is left out: it wants the county code to exist in the birth year, while the code is
  the one in force when the card was issued, so it refuses the IDs of most people born before
  their county got its present code);
- ``card``: 13 to 19 digits, in one run or in groups (4-4-4-4, Amex's 4-6-5, Diners' 4-6-4), of a
  card network's prefix, that pass Luhn;
- ``iban``: IBANs that pass ISO 13616's check (``stdnum.iban``);
- ``secret``: credentials in URLs (``user:password@``; not a template's, ``user:secret@``,
  ``u:${PASS}@``, nor for a host nobody reaches: localhost, loopback, RFC 2606's example names)
  and well-known key shapes (AWS access keys, GitHub, Slack, Google API, Stripe and OpenAI-style
  keys, PEM private keys).

Digits of a longer number are none of these: no phone, card or ID candidate starts right after a
digit and a decimal point (the fraction of ``0.37866875250654886``, ``5.5511151231257827e-017``), and
no card or ID goes on into a decimal fraction or an exponent (``4539148803436467.5``, ``...e-17``);
digits multiplied by something (``6683623321994527 × 2^-47``: a float's mantissa) are a number, and so
are the same digits anywhere else in the text (one number, one sense).

``replace: placeholder`` (the default) puts ``<EMAIL>``, ``<PHONE>``, ``<IP>``, ``<CN_ID>``,
``<CARD>``, ``<IBAN>`` or ``<SECRET>`` in place and keeps the document; the funnel counts the
redactions per type like removed lines (``pii_email``...). ``replace: drop_document`` drops
every document with any of them (reason ``pii``). With ``save_removed``, the original of each
changed document goes to ``removed/`` for audit (``metadata.pii``: the types and counts), never
to the curated documents.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import ipaddress
from typing import Literal

import regex
from datatrove.data import Document, DocumentsPipeline

from corpus.core.funnel import Filter
from corpus.core.registry import register

TYPES = ("email", "phone", "ip", "cn_id", "card", "iban", "secret")
REGIONS = ("CN", "US", "GB", "RU", "DE", "JP")

# Chinese, Japanese and Korean text glued to an address ("请联系ynhouse@ynhouse.com", "王力女士tenjie163@163.com",
# "xx@126.com联系人") is not part of it: no CJK letter in the local part or the top-level label
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
EMAIL = regex.compile(rf"(?V1)(?<![[\w.%+\-]--[{_CJK}]])[[\w.%+\-]--[{_CJK}]]{{1,64}}@"
                      rf"(?:[\p{{L}}\p{{N}}](?:[\p{{L}}\p{{N}}\-]{{0,61}}[\p{{L}}\p{{N}}])?\.)+[\p{{L}}--[{_CJK}]]{{2,24}}"
                      rf"(?![[\w\-]--[{_CJK}]])")
# a phone candidate: an optional +, then digits with the separators numbers are written with
# (one separator between digits, or a bracket with a space: "8 (912) 345-67-89"; two spaces end a number)
# (and an extension), not in the middle of a word or a case number ("Ф04-7265/2007"), nor in a time of
# day ("12:07:21.272494-04": never right after "mm:")
PHONE = regex.compile(r"(?<![\w+])(?<!\w[\-/])(?<!\d\.)(?<!\d\d:)(?P<main>\+?(?:\(\d{1,4}\)[ \u00a0\u3000.\-]?)?\d"
                      r"(?:(?:[ \u00a0\u3000.\-/]|[ \u00a0]?\(|\)[ \u00a0\-]?)?\d){6,16})"
                      r"(?:[ \u00a0]?(?:x|ext\.?|доб\.?)[ \u00a0]?\d{1,6})?(?![\w])")
# an address may end a sentence ("from 8.8.8.8."), not go on into more numbers or a name ("1.0.0.127.in-addr")
IPV4 = regex.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)")
IPV6 = regex.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# digits after a decimal point, or followed by a fraction or an exponent, belong to a longer number
_NOT_IN_NUMBER = r"(?!\.\d|[eE][+\-]?\d)"
# digits multiplied by something are a number ("6683623321994527 × 2^-47": a float's mantissa), and so are
# the same digits anywhere else in the text ("ieee754(6683623321994527,-47)": one number, one sense)
PRODUCT_AFTER = regex.compile(r"[ \u00a0]*[×*·x][ \u00a0]*\d")
CN_ID = regex.compile(r"(?<!\d)(?<!\d\.)\d{17}[\dXx](?![\dA-Za-z])" + _NOT_IN_NUMBER)
CARD = regex.compile(r"(?<![\d-])(?<!\d\.)(?:(?:\d{4}[ -]){3,4}\d{1,4}|\d{4}([ -])\d{6}\1\d{4,5}|\d{13,19})(?![\d-])"
                     + _NOT_IN_NUMBER)
IBAN = regex.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
URL_CREDENTIALS = regex.compile(r"(?<=://)[^\s/:@]{1,64}:(?P<password>[^\s/@]{1,128})(?=@)")
# ... not a template's ("user:password@host", "${USER}:${PASS}@", "u:<secret>@") nor one for a host nobody
# reaches: localhost, a loopback address, a name reserved for examples (RFC 2606: example.com, *.test...)
PLACEHOLDER_PASSWORD = regex.compile(r"(?i)(?:pass(?:word)?|passwd|pwd|secret|changeme|x+|\*+|\.+|<[^>]*>|"
                                     r"\{[^}]*\}|\$\{?\w+\}?|%\(?\w+\)?s?)")
EXAMPLE_HOST = regex.compile(r"(?i)(?:localhost|host(?:name)?|server|(?:[\w\-]+\.)*example(?:\.(?:com|org|net))?|"
                             r"(?:[\w\-]+\.)+(?:test|invalid|localhost)|127(?:\.\d{1,3}){3}|\[::1\])(?![\w.\-])")
USERINFO_BEFORE = regex.compile(r"://[^\s/:@]{1,64}:$")
# each with the strings a text must hold to be worth searching: one alternation of them all
# tried at every character ran at 5 MB/s, slower than all the other types together
SECRETS = [
    (("://",), URL_CREDENTIALS),  # user:password in a URL
    (("AKIA", "ASIA"), regex.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])")),  # AWS access key id
    (("gh", "github_pat_"), regex.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{40,255}\b")),
    (("xox",), regex.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,72}\b")),  # Slack
    (("AIza",), regex.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),  # Google API key
    (("k_live_", "k_test_"), regex.compile(r"\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,99}\b")),  # Stripe
    (("sk-",), regex.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b")),  # OpenAI-style
    # a PEM body is base64 (and an encrypted key's Proc-Type/DEK-Info lines), not "... (key here) ..."
    (("PRIVATE KEY-----",), regex.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[A-Za-z0-9+/=\s:,\-]{16,8192}?"
                                           r"-----END (?:[A-Z]+ )*PRIVATE KEY-----"))]
PHONE_CONTEXT = 12  # characters on each side of a candidate that the phone matcher sees
_CONTEXT_CUT = regex.compile(r"\s+(?=[\d(+])|(?<=\d)\s+|\s{2,}")
# a number written with spaces, hyphens or brackets, or with +, looks like a phone number by itself;
# one written as bare digits or with dots needs a word that says so before it
PHONE_WORDS = regex.compile(r"电话|電話|手机|手機|联系|聯繫|致电|致電|热线|熱線|传真|傳真|座机|座機|微信|客服|"
                            r"\b(tel|phone|mobile|cell|call|fax|whatsapp|hotline|contact)\b|телефон|тел\.|звоните|факс|"
                            r"電話番号|携帯|연락처|전화", regex.I)
NANP_DOTS = regex.compile(r"\d{3}\.\d{3}\.\d{4}")  # 555.123.4567: how US numbers are often written
DOTTED_QUAD = regex.compile(r"(?<!\d)\d{1,3}(?:\.\d{1,3}){3}(?!\d)")  # an IP address or a netmask
NOT_PHONE_WORDS = regex.compile(r"\b(?:ISBN|ISSN)(?:-1[03])?[\s:]*$")
# a date in a candidate (glued to a time: "2018-11-1509:01", "27.09.2015 10:44", "04-24-2009"; year first,
# any year: "0001-01-01", "9999-12-31 23:59"), or a list of small numbers ("1 3 6 10 5 9"), is no phone number
DATE = regex.compile(r"(?<!\d)(?:\d{4}([\-./])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])"
                     r"|(?:(?:0?[1-9]|[12]\d|3[01])([\-./])(?:0?[1-9]|1[0-2])\2(?:19|20)?\d\d"
                     r"|(?:0?[1-9]|1[0-2])([\-/])(?:0?[1-9]|[12]\d|3[01])\3(?:19|20)\d\d)(?![.\-/]?\d))")
SMALL_NUMBERS = regex.compile(r"(?:(?<!\d)\d(?!\d).*){3}")
# four or more numbers of one or two digits between spaces: a count ("10 11 12 13 14"), a table row
SHORT_GROUPS = regex.compile(r"\d{1,2}(?:[ \u00a0\u3000]\d{1,2}){3,}")
# an amount: thousands in groups of three, then a decimal fraction with another mark ("123 456 789.00",
# "1 234 567,89", "1.234.567,89"); matched on the candidate and what follows it
AMOUNT = regex.compile(r"\d{1,3}(?:(?P<g>[ \u00a0\u202f.'])\d{3})+(?!(?P=g))[.,]\d{1,2}(?!\d)")
# a dotted quad after a word that names a section, a clause or a version is a number of those
SECTION_WORDS = regex.compile(r"(?:\b(?:(?:sub)?sections?|sec|chapters?|chap|ch|clauses?|paragraphs?|para|"
                              r"articles?|art|fig|appendix|annex|parts?|versions?|ver|releases?|rev|revision|build|"
                              r"(?:под)?раздел\w*|пункт\w*|п|стать[яиюе]|ст|верси\w*)\.?|§)[\s\u00a0]*$", regex.I)
# ... and so is one that starts a line and is followed by a period and a title in any case (a heading:
# "6.4.4.2. Floating constants", "9.26.3.1. xmlparse")
LINE_START = regex.compile(r"\n[ \t]*$")
HEADING_AFTER = regex.compile(r"\.[ \t\u00a0]+\p{L}")
# ... and so is one whose first three numbers stand alone elsewhere in the text: a release of that
# series ("3.6.23" ... "fixed in 3.6.23.1"), not an address
THREE_PART = regex.compile(r"(?<![\w.])\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\w)")
AFTER_DECIMAL_POINT = regex.compile(r"\d\.$")
# a time of day is never part of a phone number: a candidate before ":mm" ends with an hour, cut off
# ("9999-12-31 23:59:59", "tel. 8 495 123-45-67 10:00"); a compact ISO time with a UTC offset
# ("040506-08", "235959.5+0530") is one
HOUR_BEFORE_MINUTES = regex.compile(r":[0-5]\d")
LAST_GROUP = regex.compile(r"[ \u00a0\u3000.\-/]?\d{1,2}$")
COMPACT_TIME = regex.compile(r"(?:[01]\d|2[0-3])[0-5]\d[0-5]\d(?:\.\d+)?[+\-](?:0\d|1[0-4])(?::?[0-5]\d)?")
# numbers only a slash apart ("155151/17228", "10000/10000"): a path or a ratio, unless the first begins
# with a trunk prefix 0 (German "089/1234567")
SLASHED = regex.compile(r"[1-9]\d*/\d+")
# a run of numbers a space apart that goes on past a candidate made of them: a row of a table or a log
# ("0 201 2513 0 1175850568 998079"), not a number someone dials ("400-882-2712 0 4.1 208" may be)
ROW_AFTER = regex.compile(r"[ \u00a0\u3000]\d")
ROW_BEFORE = regex.compile(r"\d[ \u00a0\u3000]$")
SPACED = regex.compile(r"\d+(?:[ \u00a0\u3000]\d+)+")
# a bracket that a candidate opens and does not close is what follows a number ("4294967294 (2^32 - 2)")
OPEN_BRACKET = regex.compile(r"[ \u00a0]?\([^)]*$")
# two numbers a hyphen apart, the first smaller, after a word naming what is counted: a range ("lines
# 1641-1650", "pp. 2210-2245", "ports 8000-8080"), not a number
RANGE = regex.compile(r"(\d+)[\-\u2013](\d+)")
RANGE_WORDS = regex.compile(r"\b(?:lines?|ll|ln|pages?|pp|rows?|columns?|cols?|items?|entries|records?|years?|"
                            r"issues?|bugs?|ports?|bytes?|offsets?|blocks?|sectors?|ranges?|строк\w*|стр)\.?"
                            r"[ \u00a0]*[:=#]?[ \u00a0]*$", regex.I)
# a round number (a size, a count: "--heap 10000000 64") is no group of a phone number
ROUND = regex.compile(r"(?<!\d)[1-9]0{6,}(?!\d)")


def _strong_phone(s: str) -> bool:
    return s.startswith("+") or bool(regex.search(r"[ \u00a0\u3000\-()/]", s)) or bool(NANP_DOTS.fullmatch(s))


# Visa 4; Mastercard 51-55, 22-27; Maestro 50, 56-69; Mir 2200-2204; Amex 34, 37; Diners 30, 36, 38, 39;
# JCB 35, 2131, 1800; Discover 60, 64, 65; UnionPay 62, 81
CARD_PREFIX = regex.compile(r"^(?:[456]|2[2-7]|3[04-9]|81|2131|1800)")
PLACEHOLDER = {t: f"<{t.upper()}>" for t in TYPES}
# where spans overlap, the first type in this order wins (a card is not also a phone number)
PRIORITY = {t: i for i, t in enumerate(("secret", "email", "iban", "cn_id", "card", "ip", "phone"))}


# cheap tests of a text worth searching for a type (module functions: steps are pickled to workers)
def _holds(needles: tuple[str, ...], t: str) -> bool:
    return any(n in t for n in needles)


def _may_hold_email(t: str) -> bool:
    return "@" in t


def _may_hold_ipv4(t: str) -> bool:
    return "." in t


def _may_hold_ipv6(t: str) -> bool:
    return "::" in t or t.count(":") >= 3


def _cn_province(code: str) -> bool:
    from stdnum import numdb

    return any("province" in props for _, props in numdb.get("cn/loc").info(code))


def _not_a_password(text: str, m: regex.Match) -> bool:
    """Whether an address is not the password of credentials in a URL ("ftp://user:pw@host.org")."""
    return not USERINFO_BEFORE.search(text, max(0, m.start() - 80), m.start())


def _not_an_example(text: str, m: regex.Match) -> bool:
    """Whether credentials in a URL may be real: not a template's, not for a host nobody reaches."""
    return not (PLACEHOLDER_PASSWORD.fullmatch(m.group("password")) or EXAMPLE_HOST.match(text, m.end() + 1))


def _not_a_section(text: str, m: regex.Match) -> bool:
    """Whether a dotted quad may be an address: not after a word that names a section or a version,
    not the number of a heading or a table of contents line ("6.4.4.2. Floating constants")."""
    start = m.start()
    if SECTION_WORDS.search(text, max(0, start - 16), start):
        return False
    before = text[max(0, start - 8):start]
    at_line_start = bool(LINE_START.search(before)) or (start <= 8 and not before.strip(" \t"))
    return not (at_line_start and HEADING_AFTER.match(text, m.end()))


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
            self._number_type, self._mobile = phonenumbers.number_type, phonenumbers.PhoneNumberType.MOBILE
        self.regions = list(regions)
        # (type, candidate pattern, check of a candidate or None, cheap test of a text worth searching,
        # check of a candidate in its text or None)
        rules = [("secret", pattern, None, functools.partial(_holds, needles),
                  _not_an_example if pattern is URL_CREDENTIALS else None) for needles, pattern in SECRETS]
        rules += [("email", EMAIL, None, _may_hold_email, _not_a_password),
                  ("ip", IPV4, self._ip, _may_hold_ipv4, _not_a_section), ("ip", IPV6, self._ip, _may_hold_ipv6, None)]
        if {"cn_id", "card", "iban"} & self.types:  # python-stdnum's check digits, imported once
            from stdnum import iban, luhn
            from stdnum.cn import ric

            self._luhn, self._ric_check, self._ric_born = luhn.is_valid, ric.calc_check_digit, ric.get_birth_date
            rules += [("iban", IBAN, iban.is_valid, None, None), ("cn_id", CN_ID, self._cn_id, None, None),
                      ("card", CARD, self._card, None, None)]
        self._rules = [rule for rule in rules if rule[0] in self.types]

    def find(self, text: str) -> list[tuple[int, int, str]]:
        spans: list[tuple[int, int, str]] = []
        for kind, pattern, valid, worth, in_context in self._rules:
            if worth is None or worth(text):
                found = [m for m in pattern.finditer(text) if (valid is None or valid(m.group()))
                         and (in_context is None or in_context(text, m))]
                if kind in ("card", "cn_id") and found:  # a number multiplied, here or anywhere in the text
                    numbers = {m.group() for m in found if PRODUCT_AFTER.match(text, m.end())}
                    found = [m for m in found if m.group() not in numbers]
                elif pattern is IPV4 and found:
                    series = set(THREE_PART.findall(text))
                    found = [m for m in found if m.group()[:m.group().rindex(".")] not in series]
                spans += [(m.start(), m.end(), kind) for m in found]
        if "phone" in self.types:
            spans += self._phones(text)
        return _non_overlapping(spans)

    def _phones(self, text: str) -> list[tuple[int, int, str]]:
        out = []
        for m in PHONE.finditer(text):
            main, start, end = m.group("main"), m.start(), m.end()
            opened = OPEN_BRACKET.search(main, 1)
            if opened:
                main = main[:opened.start()]
                end = start + len(main)
            if end == m.end("main") and HOUR_BEFORE_MINUTES.match(text, end):
                # the last group is the hour of a time ("2023-10-01 12:30"): cut off
                cut = LAST_GROUP.search(main)
                if cut is None:
                    continue
                main = main[:cut.start()]
                end = start + len(main)
            if end != m.end() and sum(c.isdigit() for c in main) < 7:
                continue
            if (DOTTED_QUAD.search(main) or DATE.search(main) or SMALL_NUMBERS.match(main)
                    or AMOUNT.match(text, start) or COMPACT_TIME.fullmatch(main) or ROUND.search(main)
                    or SLASHED.fullmatch(main)
                    or NOT_PHONE_WORDS.search(text[max(0, start - 12):start])):
                continue
            if SPACED.fullmatch(main) and (ROW_AFTER.match(text, end)
                                           or ROW_BEFORE.search(text, max(0, start - 2), start)):
                continue
            named = bool(PHONE_WORDS.search(text[max(0, start - 24):start]))
            if not named and (SHORT_GROUPS.fullmatch(main) or text[start - 1:start] == "="):
                continue  # ... and a number glued to "=" is a value (code, a setting, a URL's query)
            pair = RANGE.fullmatch(main)
            if (pair and not named and int(pair[1]) < int(pair[2])
                    and RANGE_WORDS.search(text, max(0, start - 12), start)):
                continue
            # digits alone, or between dots: a timestamp, a DOI, a big number, unless named a phone
            # or a mobile number as people write them, 11 digits ("13800138000", "89161234567")
            weak = not _strong_phone(main) and not named
            if weak and not (len(main) == 11 and main.isdigit()):
                continue
            # the matcher sees the candidate with some context: it refuses dates and times by what
            # surrounds a number ("2023-10-01 12:30" is not a Washington number)
            # ... but not a number beyond a space, which its extraction would join to this one
            left, right = text[max(0, start - PHONE_CONTEXT):start], text[end:end + PHONE_CONTEXT]
            left = _CONTEXT_CUT.split(left)[-1]
            right = _CONTEXT_CUT.split(right, maxsplit=1)[0]
            lo = start - len(left)
            window = left + text[start:end] + right
            best: list = []  # the region whose numbers cover most of the candidate ("8 (912) ..." is Russian
            for region in ["ZZ"] if main.startswith("+") else self.regions:  # whole, not a Chinese tail)
                # (not digits after a decimal point: "GCC 2.96 20000731")
                found = [(lo + p.start, lo + p.end, "phone")
                         for p in self._matcher(window, region, leniency=self._valid_leniency)
                         if lo + p.end > start and lo + p.start < end
                         and (not weak or self._number_type(p.number) == self._mobile)
                         and not AFTER_DECIMAL_POINT.search(text[max(0, lo + p.start - 2):lo + p.start])]
                if sum(e - s for s, e, _ in found) > sum(e - s for s, e, _ in best):
                    best = found
                    if sum(e - s for s, e, _ in found) >= end - start:
                        break
            out += best
        return out

    def _cn_id(self, s: str) -> bool:
        if self._ric_check(s) != s[-1].upper():
            return False
        try:
            born = self._ric_born(s)
        except ValueError:  # stdnum's InvalidComponent
            return False
        return datetime.date(1900, 1, 1) <= born <= datetime.date.today() and _cn_province(s[:2])

    def _card(self, s: str) -> bool:
        digits = _digits(s)
        return 13 <= len(digits) <= 19 and bool(CARD_PREFIX.match(digits)) and self._luhn(digits)

    def _ip(self, s: str) -> bool:
        if ":" in s:
            groups = s.split(":")
            if sum(1 for group in groups if group) < 3:  # "x[8::]", "::2": slices, not addresses
                return False
            if all(len(group) == 2 for group in groups):  # "0a:00:2b:ff:fe:01:02:03": a MAC (EUI-48/64)
                return False
        try:
            address = ipaddress.ip_address(s)
        except ValueError:
            return False
        if address.version == 4 and address.packed[0] < 4 and max(address.packed) < 20:
            return False  # 1.2.0.1, 2.7.2.2, 3.1.1.3: a version (no one's address: APNIC's 1.1.1.1...)
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
