"""Personal data found and text left alone, in one run: our ``pii_redactor`` (``PiiFinder`` with
its default types and regions) side by side with datatrove's ``PIIFormatter`` (e-mail and IPv4
only) and Presidio's pattern recognizers (no NLP model: each predefined recognizer is called as
``recognizer.analyze(text, entities, nlp_artifacts=None)``).

    python bench/pii.py [--split test|dev|all] [--runs 3] [--show 6] [--fresh DIR] [--fresh2 DIR]
    # pip install presidio-analyzer faker   (datatrove, phonenumbers, python-stdnum: the project's)

1. **Planted personal data.** Real excerpts from ``web-quality/hplt2-excerpts.jsonl`` (zho_Hans,
   eng_Latn, rus_Cyrl, ~900 characters each) get four values each, made by Faker's zh_CN, en_US or
   ru_RU locale (``email(safe=False)``, ``phone_number()``, zh_CN's ``ssn()`` (an 18-digit
   resident ID), ``credit_card_number()``, ``iban()``, ``ipv4_public()``, ``ipv6()``), written
   the way a page writes them: at a space between two letters (or after Chinese punctuation),
   with a space or Chinese punctuation around, half of them after a label ("电话：", "Phone:",
   "Тел.:", "IBAN:"...) and half bare; cards and IBANs are printed in groups of four half of the
   time (Amex and Diners 4-6-5 / 4-6-4). Only values of a real format are planted: Faker's
   numbers are drawn again until they are valid numbers of the locale's country for libphonenumber
   (most of ru_RU's area codes and US numbers written ``001-...`` are not), resident IDs with a
   valid date and GB 11643 check digit, cards of 13-19 digits passing Luhn (en_US's 12-digit
   "Maestro" numbers are not), IBANs passing ISO 13616 (zh_CN's 21-character GB IBANs do not, so
   zh pages get none), public IPv6 addresses; the count of values drawn again is printed.
   **Recall**: a planted value is found when the tool's detections of its type cover all its
   letters and digits ("partial" when they cover some). **Precision**: the tool's detections on
   the planted excerpt that overlap a planted value of their type, and take no letter or digit
   around it (a label, a name glued to an address), are right; those that the same
   tool also made at the same place in the excerpt before planting are left out (the excerpts
   hold real phone numbers and addresses, and whether they are is not judged here); all others
   are false (a card found as a phone, a number glued to a neighbour, an ID found in the text
   around). So precision here is about what planting adds; what tools find in the unplanted
   excerpts is counted and sampled in its own table, for a reader to judge.
2. **False changes.** Python's documentation sources (``sites/python-docs/_sources/**/*.rst.txt``:
   versions, dates, issue numbers, sizes, hashes, doctest output): characters each tool
   replaces, less the e-mail addresses it finds (an address pattern checks them; the docs hold
   hundreds) and the IP addresses, networks and phone numbers the docs write (``genuine``: what
   ``ipaddress`` accepts, less versions and OIDs, checked by hand), per million characters, with
   the most frequent false ones.
3. **False changes on fresh sets** (``--fresh``, default ``data/pii-fresh``, and ``--fresh2``,
   default ``data/pii-fresh2``; each skipped with a message when absent): the visible text
   (resiliparse's ``extract_plain_text``, all of the page, formatting kept, table cells apart) of
   every ``*.html`` (regular files, not links to them) of Debian 12's documentation packages;
   counted with the rules of the Python docs, except that a public IP address is genuine only when
   listed in the set's hand-checked list (section numbers and four-part versions abound there).

   The first (``--fresh``): PostgreSQL 15 and SQLite 3.40: release notes, limits, sizes, OIDs,
   timings, version numbers, sample output. Made once and kept out of every fix until its one run;
   the false changes that run showed (times, dates of any year glued to times, log rows, paths,
   lower-case headings, MAC addresses, a float's mantissa, example credentials) led to the next
   fixes, so it is *seen* now: still reported, it no longer measures them. Lists ``FRESH_PHONES``
   and ``FRESH_PUBLIC``. To fetch it (data/ is git-ignored)::

       mkdir -p data/pii-fresh && cd data/pii-fresh
       apt-get update   # once, if apt-get cannot find the packages
       apt-get download postgresql-doc-15 sqlite3-doc   # 15.20-0+deb12u1 and 3.40.1-2+deb12u2 were used
       for d in *.deb; do dpkg-deb -x "$d" "${d%%_*}"; done

   The second (``--fresh2``), made after those fixes and run once, untuned: the Apache HTTP Server
   2.4 manual (all its languages: en, fr, ko, ja, tr, es, de, zh-cn...), Git's and Postfix's
   documentation whole, and 2,919 of the 32,101 pages of Rust 1.63's (every 11th in sorted order,
   to keep at most ``FRESH2_PER_PACKAGE`` of a package): 20.4 M characters. Lists ``FRESH2_PHONES``
   and ``FRESH2_PUBLIC``. To fetch it::

       mkdir -p data/pii-fresh2 && cd data/pii-fresh2
       apt-get download apache2-doc git-doc postfix-doc rust-doc
       # 2.4.71-1~deb12u1, 1:2.39.5-0+deb12u3, 3.7.11-0+deb12u1 and 1.63.0+dfsg1-2 were used
       for d in *.deb; do dpkg-deb -x "$d" "${d%%_*}"; done

4. **Throughput**: MB (UTF-8) per second on one core (one process, OMP_WAIT_POLICY=PASSIVE),
   median of ``--runs``, on the excerpts before planting (real web text), on the docs and on the
   fresh sets: ours ``redact(text, find(text))``, datatrove ``format(text)``, Presidio
   all recognizers' ``analyze`` plus the overlap resolution below. The load average is printed.

Presidio: ``EmailRecognizer`` (its ``tldextract`` check reads the suffix list bundled with
tldextract: nothing is downloaded), ``PhoneRecognizer(supported_regions=CN US GB RU DE JP)`` (its
default leniency, VALID, as ours), ``CreditCardRecognizer``, ``IpRecognizer``,
``IbanRecognizer``; it has no Chinese ID recognizer. Without the AnalyzerEngine, overlapping
results of different recognizers are resolved as Presidio's anonymizer would replace them: the
higher score wins (then the longer). datatrove: its e-mail and IP patterns and public-IP check,
applied as ``format()`` applies them (e-mails first, then IPs in what is left); the spans are
checked to give ``format()``'s exact output on every text.

Halves: excerpts and doc files are split by a hash of their id / path, as in bench/curation.py;
anything in ``corpus/filters/pii.py`` tuned with this benchmark was tuned on ``dev``, and
``test`` is reported by default. Planting is seeded per excerpt (``--seed``).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import ipaddress
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import SHARED, require_shared  # noqa: E402

LANGS = {"zho_Hans": "zh", "eng_Latn": "en", "rus_Cyrl": "ru"}
LOCALE = {"zh": "zh_CN", "en": "en_US", "ru": "ru_RU"}
COUNTRY = {"zh": "CN", "en": "US", "ru": "RU"}
TYPES = ("email", "phone", "cn_id", "card", "iban", "ip")
# four values per excerpt, drawn in turn from these (phones twice: their formats vary most)
PLANT = {"zh": ("email", "phone", "cn_id", "card", "phone", "ip"),
         "en": ("email", "phone", "card", "iban", "phone", "ip"),
         "ru": ("email", "phone", "card", "iban", "phone", "ip")}
PER_DOC = 4
LABELS = {
    "zh": {"email": ["邮箱：", "电子邮件：", "请联系"], "phone": ["电话：", "联系电话：", "手机："],
           "cn_id": ["身份证号：", "身份证号码："], "card": ["银行卡号：", "卡号："], "ip": ["IP：", "IP地址："]},
    "en": {"email": ["Email: ", "E-mail ", "write to "], "phone": ["Phone: ", "Tel. ", "call "],
           "card": ["Card number: ", "card "], "iban": ["IBAN: ", "IBAN "], "ip": ["IP address: ", "from IP "]},
    "ru": {"email": ["E-mail: ", "Эл. почта: ", "пишите на "], "phone": ["Тел.: ", "Телефон: ", "звоните "],
           "card": ["Номер карты: ", "карта "], "iban": ["IBAN: ", "IBAN "], "ip": ["IP-адрес: ", "с IP "]},
}
SUPPORTS = {"ours": set(TYPES), "datatrove": {"email", "ip"}, "presidio": {"email", "phone", "card", "iban", "ip"}}
REGIONS = ("CN", "US", "GB", "RU", "DE", "JP")
# an e-mail address, to tell addresses the docs hold from other changes
REF_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
# the phone numbers the Python docs write (re's example phone book), and the strings that look like
# IPv4 addresses but are versions or section numbers there (zlib 1.2.0.1, GCC 2.7.2.2, novas==3.1.1.3,
# Thunderbird 1.5.0.9, Firefox/2.0.0.11, C99's section 6.4.4.2), checked by hand in context
DOC_PHONES = {"834.345.1254", "892.345.3428", "925.541.7625", "548.326.4584"}
DOC_VERSIONS = {"1.2.0.1", "1.2.2.2", "1.2.3.4", "1.2.3.5", "1.5.0.9", "2.0.0.11", "2.7.2.2", "3.1.1.3", "6.4.4.2"}


FRESH = ROOT / "data" / "pii-fresh"
FRESH2 = ROOT / "data" / "pii-fresh2"
FRESH2_PER_PACKAGE = 3000  # pages at most of a package of the second fresh set (rust-doc: every 11th)
FRESH2_FETCH = ("mkdir -p data/pii-fresh2 && cd data/pii-fresh2 && apt-get download apache2-doc git-doc postfix-doc "
                'rust-doc && for d in *.deb; do dpkg-deb -x "$d" "${d%%_*}"; done')
FRESH_FETCH = ("mkdir -p data/pii-fresh && cd data/pii-fresh && apt-get download postgresql-doc-15 sqlite3-doc && "
               'for d in *.deb; do dpkg-deb -x "$d" "${d%%_*}"; done')
# The fresh set, checked by hand in context after the one run made on it: the phone numbers it writes
# (press contacts and D. R. Hipp's office in SQLite's pages; a home_phone column, a phonebook table and
# an @phoneNumber parameter in examples), and the public IP addresses and networks it uses as such
# (a pg_hba.conf error, hosts to connect to, inet values and results, a cidr input table; 1.2.3.0 is
# the tail of ::ffff:1.2.3.0). Its private, loopback, documentation and netmask addresses (192.168.1.5/24,
# 127.0.0.1, ::1, 255.255.255.0...) are all used as addresses there. What else looks like an address
# is not one: section numbers ("9.15.1.1. xmlcomment", "Section 4.1.2.1", "E.21.3.1.1."), SQLite
# versions ("3.6.23.1", "Version 3.3.0.0"), an ltree path ("1.2.3.4.5.6"), a collation version
# ("version 1.2.3.4"), MAC addresses that ipaddress reads as IPv6 (macaddr8 '08:00:2b:01:02:03:04:05').
FRESH_PHONES = {"+1.415.345.4754", "+1.704.948.4565", "704.948.4565", "+44 207 154 1707", "098-765-4321",
                "202-456-1111", "704-555-1212"}
FRESH_PUBLIC = {"123.123.123.123", "192.83.123.89", "200.46.204.71", "212.78.10.32", "63.87.254.249", "1.2.3.0",
                "128.0.0.0", "128.0.0.0/16", "128.1.0.0", "128.1.0.0/16", "128.1.2.0", "128.1.2.0/24",
                "2001:4f8:3:ba::", "2001:4f8:3:ba::/64", "::ffff:1.2.3.0/120", "::ffff:1.2.3.0/128", "::10.2.3.4",
                "::ffff:1"}
# The second fresh set, checked by hand in context after its one run (every phone number and every public
# address any tool found, in all their contexts): the phone number it writes (Postfix's reject footer:
# "call 800-555-0101"), and the public IP addresses and networks it uses as such (VirtualHost, Listen,
# BalancerMember, Require ip, mynetworks, proxy_interfaces, smtp_bind_address(6), log lines, the public
# 2000::/3 block, IPv6 netmasks; one "$Revision: 1.2.3.4$" among 36 uses of 1.2.3.4 as an address is
# counted with them). What else looks like an address is not one: the Rust books' table of contents
# ("1. 1.2.2.1. Testcase: List", "8.5.1.3. enums"), Git versions ("prior to 1.5.1.2", "v1.7.4.2-679-g3bee7fb",
# "git/1.8.3.1"), Postfix's delivery sequence "1.1.1.1", git-remote-fd's "fd::17", an OID "1.2.3.4.5.6".
FRESH2_PHONES = {"800-555-0101"}
FRESH2_PUBLIC = {"1.2.3.0", "1.2.3.0/24", "1.2.3.4", "1.2.3.5", "1.2.3.6", "1.2.3.7", "11.22.33.44", "111.22.33.44",
                 "111.22.33.45", "111.22.33.55", "12.34.56.0", "12.34.56.0/24", "168.100.189.0", "168.100.189.0/28",
                 "168.100.189.2", "168.100.189.2/28", "168.100.189.2/32", "168.100.189.8", "192.170.2.1", "192.170.2.5",
                 "192.54.148.0", "192.54.148.0/24", "192.54.172.0", "192.54.172.0/24", "192.76.162.40",
                 "193.102.180.41", "1:2:3:4:5:6:7:8", "1:2:3::4:5:6", "2000::/3", "2001:240:587:0:250:56ff:fe89:1",
                 "2001:240:587:0:2d0:b7ff:fe88:2ca7", "2001:240:587::", "205.252.46.165", "239.0.0.1", "72.15.99.187",
                 "::ffff:1.2.3.4", "ffff:ffff:ffff:ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}


def genuine(text: str, a: int, b: int, phones: set[str] = DOC_PHONES, versions: set[str] = DOC_VERSIONS,
            public: set[str] | None = None) -> bool:
    """Whether text[a:b] is an IP address (network, netmask) or phone number as the docs use it:
    not part of a longer dotted number (an OID, a reverse pointer, section 5.2.4.2.2), not reST's
    "::" after a word ("Python 3::"), not a slice ("L[::2]"), not a version; with ``public``, a
    public address only if it is one of those."""
    s = text[a:b]
    if s in phones:
        return True
    if s in versions or s == "::" or re.fullmatch(r"\w{1,4}::", s) or re.search(r"[\w)\]]\[\Z", text[max(0, a - 2):a]):
        return False
    if re.search(r"\d\.?\Z", text[max(0, a - 2):a]) or re.match(r"\.?\w", text[b:b + 2]):
        return False
    try:
        address = ipaddress.ip_interface(re.sub(r"%\w+$", "", s))
    except ValueError:
        return False
    return public is None or not address.ip.is_global or s in public


def half(key: str) -> str:
    return "test" if hashlib.blake2b(key.encode(), digest_size=1).digest()[0] % 2 else "dev"


# --- the data -----------------------------------------------------------------------------------

def excerpts(split: str) -> list[dict]:
    rows = []
    with (SHARED / "web-quality" / "hplt2-excerpts.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["lang"] in LANGS and split in (half(row["id"]), "all"):
                rows.append({"id": row["id"], "lang": LANGS[row["lang"]], "text": row["text"]})
    return rows


def doc_files(split: str) -> list[tuple[str, str]]:
    folder = SHARED / "sites" / "python-docs" / "_sources"
    out = []
    for path in sorted(folder.rglob("*.rst.txt")):
        name = path.relative_to(folder).as_posix()
        if split in (half(name), "all"):
            out.append((name, path.read_text(encoding="utf-8")))
    return out


def fresh_files(folder: Path, per_package: int | None = None) -> list[tuple[str, str]]:
    """(package/path, visible text) of every HTML page under a fresh set's folder (regular files: a
    link repeats a page); with ``per_package``, of a package with more pages, every k-th in sorted
    order (k = ceil(pages / per_package))."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree

    pages = collections.defaultdict(list)
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in (".html", ".htm") and path.is_file() and not path.is_symlink():
            pages[path.relative_to(folder).parts[0]].append(path)
    out = []
    for package in sorted(pages):
        paths = pages[package]
        if per_package and len(paths) > per_package:
            paths = paths[::-(-len(paths) // per_package)]
        for path in paths:
            raw = path.read_bytes()
            tree = HTMLTree.parse(bytes_to_str(raw, detect_encoding(raw)))
            text = extract_plain_text(tree, main_content=False, preserve_formatting=True, alt_texts=False)
            if text.strip():
                out.append((path.relative_to(folder).as_posix(), text))
    return out


def _cn_id_ok(s: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    if "10X98765432"[sum(int(c) * w for c, w in zip(s[:17], weights)) % 11] != s[17]:
        return False
    try:
        return datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14])) < datetime.date.today()
    except ValueError:
        return False


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


class Planter:
    """Faker's values of a real format, written as a page writes them."""

    def __init__(self, seed: int):
        from faker import Faker

        self.seed = seed
        self.fakers = {lang: Faker(locale) for lang, locale in LOCALE.items()}
        self.redrawn: collections.Counter = collections.Counter()

    def value(self, lang: str, kind: str, rng: random.Random) -> str:
        import phonenumbers
        from stdnum import iban

        fake = self.fakers[lang]
        for _ in range(1000):
            if kind == "email":
                return fake.email(safe=False)
            if kind == "phone":
                v = fake.phone_number()
                try:
                    ok = phonenumbers.is_valid_number(phonenumbers.parse(v, COUNTRY[lang]))
                except phonenumbers.NumberParseException:
                    ok = False
            elif kind == "cn_id":
                v = fake.ssn()
                ok = _cn_id_ok(v)
            elif kind == "card":
                v = fake.credit_card_number()
                ok = 13 <= len(v) <= 19 and _luhn(v)
                groups = {14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}.get(len(v))
                if ok and groups and rng.random() < 0.5:  # as printed on the card
                    parts, i = [], 0
                    for g in groups:
                        parts.append(v[i:i + g])
                        i += g
                    v = rng.choice(" -").join(parts)
            elif kind == "iban":
                v = fake.iban()
                ok = iban.is_valid(v)
                if ok and rng.random() < 0.5:
                    v = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
            else:  # ip: four in five IPv4
                v = fake.ipv4_public() if rng.random() < 0.8 else fake.ipv6()
                ok = ipaddress.ip_address(v).is_global
            if ok:
                return v
            self.redrawn[(lang, kind)] += 1
        raise RuntimeError(f"Faker gives no valid {kind} for {lang}")

    def plant(self, row: dict) -> dict:
        """The excerpt with PER_DOC values inserted: text, the planted spans (start, end, type,
        value, labelled) and the insertions (cut, length) to map the excerpt's own offsets."""
        lang, text = row["lang"], row["text"]
        rng = random.Random(f"{self.seed}:{row['id']}")
        for fake in self.fakers.values():
            fake.seed_instance(rng.getrandbits(32))
        letter = re.compile(r"[^\W\d_]")
        cuts = [i for i in range(1, len(text) - 1) if text[i].isspace()
                and letter.match(text[i - 1]) and letter.match(text[i + 1])]
        if lang == "zh":
            cuts += [i + 1 for i in range(len(text) - 1) if text[i] in "，。；！？" and letter.match(text[i + 1])]
        rng.shuffle(cuts)
        chosen: list[int] = []
        for c in cuts:
            if all(abs(c - o) >= 20 for o in chosen):
                chosen.append(c)
            if len(chosen) == PER_DOC:
                break
        chosen += [len(text)] * (PER_DOC - len(chosen))
        offset = rng.randrange(len(PLANT[lang]))
        kinds = [PLANT[lang][(offset + k) % len(PLANT[lang])] for k in range(PER_DOC)]
        out, spans, inserts, last, added = [], [], [], 0, 0
        for cut, kind in zip(sorted(chosen), kinds):
            value = self.value(lang, kind, rng)
            label = rng.choice(LABELS[lang][kind]) if rng.random() < 0.5 else ""
            at_space = cut < len(text) and text[cut].isspace()
            if lang == "zh":
                before = " " if at_space or cut == len(text) else ""
                after = rng.choice(["，", "。", "；"] + ([""] if at_space else []))
            else:
                before, after = " ", rng.choice(["", ",", ".", ";"]) + ("" if at_space else " ")
            piece = before + label + value + after
            out += [text[last:cut], piece]
            start = cut + added + len(before) + len(label)
            spans.append((start, start + len(value), kind, value, bool(label)))
            inserts.append((cut, len(piece)))
            added += len(piece)
            last = cut
        out.append(text[last:])
        return {**row, "planted": "".join(out), "spans": spans, "inserts": inserts}


def shifted(span: tuple[int, int, str], inserts: list[tuple[int, int]]) -> tuple[int, int, str] | None:
    """Where a detection in the excerpt lies in the planted excerpt (None: an insertion splits it)."""
    a, b, kind = span
    shift = 0
    for cut, n in inserts:
        if a < cut < b:
            return None
        if cut <= a:
            shift += n
    return a + shift, b + shift, kind


# --- the tools ----------------------------------------------------------------------------------

class Ours:
    name = "ours"

    def __init__(self):
        from corpus.filters.pii import PiiFinder, redact

        self.finder, self._redact = PiiFinder(), redact

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        return self.finder.find(text)

    def timed(self, text: str) -> list[tuple[int, int, str]]:
        spans = self.finder.find(text)
        self._redact(text, spans)
        return spans


class Datatrove:
    name = "datatrove"

    def __init__(self):
        from datatrove.pipeline.formatters.pii import PIIFormatter

        self.formatter = PIIFormatter()

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        # format(): e-mails replaced first (no check), then public IPv4 in the result; the
        # replacements hold no digit, so masking the e-mails finds the same IPs at the same places
        f = self.formatter
        emails = [(m.start(), m.end(), "email") for m in f.emails_replacer.regex.finditer(text)]
        masked, last = [], 0
        for a, b, _ in emails:
            masked += [text[last:a], "\0" * (b - a)]
            last = b
        masked.append(text[last:])
        ips = [(m.start(), m.end(), "ip") for m in f.ip_replacer.regex.finditer("".join(masked))
               if f.ip_replacer.validator(m.group())]
        return sorted(emails + ips)

    def timed(self, text: str) -> str:
        return self.formatter.format(text)

    def check(self, texts: list[str]) -> int:
        """Texts where the spans do not give format()'s output (0 when faithful)."""
        from datatrove.pipeline.formatters.pii import PIIFormatter

        bad = 0
        for text in texts:
            fresh = PIIFormatter()
            out, last, i = [], 0, {"email": 0, "ip": 0}
            for a, b, kind in self.spans(text):
                reps = (fresh.emails_replacer if kind == "email" else fresh.ip_replacer).replacements
                out += [text[last:a], reps[i[kind] % len(reps)]]
                i[kind] += 1
                last = b
            bad += "".join(out) + text[last:] != PIIFormatter().format(text)
        return bad


class Presidio:
    name = "presidio"
    KIND = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "card", "IBAN_CODE": "iban",
            "IP_ADDRESS": "ip"}

    def __init__(self):
        import types

        import tldextract
        from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                              IpRecognizer, PhoneRecognizer)
        from presidio_analyzer.predefined_recognizers.generic import email_recognizer

        # the public suffix list bundled with tldextract, never fetched
        email_recognizer.tldextract = types.SimpleNamespace(extract=tldextract.TLDExtract(suffix_list_urls=()))
        self.recognizers = [EmailRecognizer(), PhoneRecognizer(supported_regions=REGIONS), CreditCardRecognizer(),
                            IpRecognizer(), IbanRecognizer()]

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        results = [r for rec in self.recognizers for r in rec.analyze(text, rec.supported_entities, None)]
        chosen: list[tuple[int, int, str]] = []
        for r in sorted(results, key=lambda r: (-r.score, r.start - r.end, r.start)):
            if all(r.end <= a or r.start >= b for a, b, _ in chosen):
                chosen.append((r.start, r.end, self.KIND[r.entity_type]))
        return sorted(chosen)

    timed = spans


def run_tool(tool, texts: list[str], runs: int) -> tuple[float, list]:
    """Median seconds of ``runs`` passes of the tool's own work over the texts, and its spans."""
    seconds, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        res = [tool.timed(x) for x in texts]
        seconds.append(time.perf_counter() - t)
        out = out or res
    return statistics.median(seconds), out


# --- scoring ------------------------------------------------------------------------------------

def covered(value_span: tuple[int, int], text: str, spans: list[tuple[int, int, str]], kind: str) -> str:
    """'full', 'partial' or '' coverage of a planted value's letters and digits by spans of its kind."""
    a, b = value_span
    need = {i for i in range(a, b) if text[i].isalnum()}
    have = {i for s, e, k in spans if k == kind and s < b and e > a for i in range(max(s, a), min(e, b))}
    return "full" if need <= have else ("partial" if have & need else "")


def score(docs: list[dict], found: list[list], before: list[list]) -> dict:
    """Counts per (lang, type): planted, found, partial, tp, fp; (lang, 'phone bare'/'labelled');
    and samples of misses and false detections."""
    c: dict = collections.defaultdict(collections.Counter)
    misses, false = [], []
    for doc, spans, orig in zip(docs, found, before):
        text = doc["planted"]
        for a, b, kind, value, labelled in doc["spans"]:
            cov = covered((a, b), text, spans, kind)
            for key in [(doc["lang"], kind)] + ([(doc["lang"], f"phone {'labelled' if labelled else 'bare'}")]
                                                 if kind == "phone" else []):
                c[key]["planted"] += 1
                c[key]["found"] += cov == "full"
                c[key]["partial"] += cov == "partial"
            if cov != "full":
                got = [text[s:e] for s, e, k in spans if s < b and e > a]
                misses.append((doc["lang"], kind, text[max(0, a - 12):b + 4].replace("\n", " "), got))
        known = {shifted(s, doc["inserts"]) for s in orig}
        for s, e, kind in spans:
            if kind not in TYPES:
                continue  # secrets: none planted
            hit = [(a, b) for a, b, k, _, _ in doc["spans"] if k == kind and s < b and e > a]
            if hit and not any(text[i].isalnum() and not any(a <= i < b for a, b in hit) for i in range(s, e)):
                c[(doc["lang"], kind)]["tp"] += 1
            elif (s, e, kind) not in known:
                c[(doc["lang"], kind)]["fp"] += 1
                false.append((doc["lang"], kind, text[s:e], text[max(0, s - 15):e + 15].replace("\n", " ")))
    return {"counts": c, "misses": misses, "false": false}


def false_changes(names: list[str], texts: list[str], results: dict, key: str, show: int, phones: set[str],
                  versions: set[str], public: set[str] | None = None, per_part: bool = False) -> dict:
    """The table of false changes of each tool on texts (its spans in results[tool][key]); with
    per_part, false per M characters of each first path component too. Returns the genuine ones."""
    chars = sum(len(t) for t in texts)
    parts = collections.Counter()
    for name, text in zip(names, texts):
        parts[name.split("/")[0]] += len(text)
    part_cols = sorted(parts) if per_part else []
    print("| tool | e-mail chars | IP/phone chars | false chars | false per M chars | "
          + "".join(f"{part} false per M | " for part in part_cols) + "most frequent false |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(part_cols) + "---|")
    found_genuine = {}
    for t in results:
        email = real = false = 0
        samples, ok = collections.Counter(), collections.Counter()
        false_in = collections.Counter()
        for name, text, spans in zip(names, texts, results[t][key]):
            for a, b, kind in spans:
                s = text[a:b]
                if kind == "email" and REF_EMAIL.fullmatch(s):
                    email += b - a
                    ok[f"email {s}"] += 1
                elif genuine(text, a, b, phones, versions, public):
                    real += b - a
                    ok[f"{kind} {s}"] += 1
                else:
                    false += b - a
                    false_in[name.split("/")[0]] += b - a
                    samples[f"{kind} {s[:40]!r}"] += 1
        found_genuine[t] = ok
        top = ", ".join(f"{s} ×{n}" if n > 1 else s for s, n in samples.most_common(show))
        print(f"| {t} | {email} | {real} | {false} | {false / chars * 1e6:.1f} | "
              + "".join(f"{false_in[part] / parts[part] * 1e6:.1f} | " for part in part_cols) + f"{top} |")
    print()
    return found_genuine


def fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", choices=["test", "dev", "all"],
                    help="test: the held-out half (default); dev: the half tuned on")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--runs", type=int, default=3, help="timing runs (median)")
    ap.add_argument("--show", type=int, default=6, help="sample lines per table of examples")
    ap.add_argument("--fresh", type=Path, default=FRESH,
                    help="the first fresh set (seen): Debian documentation packages extracted there "
                         "(default: %(default)s)")
    ap.add_argument("--fresh2", type=Path, default=FRESH2,
                    help="the second fresh set (held out): Debian documentation packages extracted there "
                         "(default: %(default)s)")
    args = ap.parse_args()
    load0 = os.getloadavg()

    t0 = time.perf_counter()
    planter = Planter(args.seed)
    docs = [planter.plant(row) for row in excerpts(args.split)]
    docs_py = doc_files(args.split)
    by_lang = collections.Counter(d["lang"] for d in docs)
    py_chars = sum(len(t) for _, t in docs_py)
    # (key, title, folder, fetch command, phones, public addresses, pages per package, pages)
    fresh_sets = [("fresh", "first fresh set (seen)", args.fresh, FRESH_FETCH, FRESH_PHONES, FRESH_PUBLIC, None),
                  ("fresh2", "second fresh set (held out)", args.fresh2, FRESH2_FETCH, FRESH2_PHONES, FRESH2_PUBLIC,
                   FRESH2_PER_PACKAGE)]
    fresh_sets = [(*f, fresh_files(f[2], f[6]) if f[2].is_dir() else []) for f in fresh_sets]
    print(f"## PII: {args.split} half, seed {args.seed}\n")
    print(f"{len(docs)} excerpts ({', '.join(f'{k} {v}' for k, v in sorted(by_lang.items()))}), "
          f"{sum(len(d['spans']) for d in docs)} values planted; python-docs: {len(docs_py)} files, "
          f"{py_chars / 1e6:.2f} M characters. Faker values drawn again as not real: "
          + ", ".join(f"{lang} {kind} {n}" for (lang, kind), n in sorted(planter.redrawn.items()))
          + f" ({time.perf_counter() - t0:.0f} s)\n")
    for _, title, folder, fetch, _, _, _, pages in fresh_sets:
        if pages:
            packages = collections.Counter(name.split("/")[0] for name, _ in pages)
            chars = collections.Counter()
            for name, text in pages:
                chars[name.split("/")[0]] += len(text)
            print(f"The {title}, {folder}: {len(pages)} pages ("
                  + ", ".join(f"{k} {v} pages, {chars[k] / 1e6:.2f} M" for k, v in sorted(packages.items()))
                  + f"), {sum(chars.values()) / 1e6:.2f} M characters.\n")
        else:
            print(f"No {title} in {folder} (its table is left out); to make it, from the repository root:\n"
                  f"    {fetch}\n")

    planted_texts = [d["planted"] for d in docs]
    web_texts = [d["text"] for d in docs]
    py_texts = [t for _, t in docs_py]
    fresh_texts = {key: [t for _, t in pages] for key, *_, pages in fresh_sets if pages}
    mb_web = sum(len(t.encode()) for t in web_texts) / 1e6
    mb_py = sum(len(t.encode()) for t in py_texts) / 1e6
    mb_fresh = {key: sum(len(t.encode()) for t in texts) / 1e6 for key, texts in fresh_texts.items()}
    results = {}
    for cls in (Ours, Datatrove, Presidio):
        try:
            tool = cls()
        except ImportError as e:
            print(f"{cls.name}: not installed ({e})\n")
            continue
        tool.spans(planted_texts[0])  # load outside the timing
        t_web, before = run_tool(tool, web_texts, args.runs)
        t_py, py_found = run_tool(tool, py_texts, args.runs)
        t_fresh, fresh_found = {}, {}
        for key, texts in fresh_texts.items():
            t_fresh[key], fresh_found[key] = run_tool(tool, texts, args.runs)
        if cls is Datatrove:  # its timed work is format(): the spans come from here
            before = [tool.spans(t) for t in web_texts]
            py_found = [tool.spans(t) for t in py_texts]
            fresh_found = {key: [tool.spans(t) for t in texts] for key, texts in fresh_texts.items()}
            bad = tool.check(planted_texts + web_texts + py_texts + [t for ts in fresh_texts.values() for t in ts])
            if bad:
                print(f"**datatrove: the spans differ from format() on {bad} texts**\n")
        found = [tool.spans(t) for t in planted_texts]
        results[cls.name] = {"score": score(docs, found, before), "before": before, "py": py_found,
                             **fresh_found, "web_mbs": mb_web / t_web, "py_mbs": mb_py / t_py,
                             **{f"{key}_mbs": mb_fresh[key] / t for key, t in t_fresh.items()}}
    tools = list(results)

    # 1. precision and recall on planted values
    print("### Planted values: precision / recall (`-`: the tool has no such type)\n")
    print("| type | lang | planted | " + " | ".join(f"{t} P | {t} R" for t in tools) + " |")
    print("|---|---|---:|" + "---:|---:|" * len(tools))
    for kind in TYPES + ("phone bare", "phone labelled"):
        base = kind.split()[0]
        for lang in ("zh", "en", "ru", "all"):
            langs = ("zh", "en", "ru") if lang == "all" else (lang,)
            n = sum(results[tools[0]]["score"]["counts"][(g, kind)]["planted"] for g in langs)
            if not n or (lang == "all" and sum(results[tools[0]]["score"]["counts"][(g, kind)]["planted"] > 0
                                               for g in ("zh", "en", "ru")) < 2):
                continue
            cells = []
            for t in tools:
                if base not in SUPPORTS[t]:
                    cells += ["-", "-"]
                    continue
                cnt = collections.Counter()
                for g in langs:
                    cnt.update(results[t]["score"]["counts"][(g, kind)])
                p = cnt["tp"] / (cnt["tp"] + cnt["fp"]) if cnt["tp"] + cnt["fp"] else None
                r = cnt["found"] / cnt["planted"]
                partial = f" (+{cnt['partial']} partial)" if cnt["partial"] else ""
                cells += ["" if " " in kind else fmt(p), fmt(r) + partial]
            print(f"| {kind} | {lang} | {n} | " + " | ".join(cells) + " |")
    print()
    for t in tools:
        s = results[t]["score"]
        if s["misses"] or s["false"]:
            print(f"{t}: {len(s['misses'])} planted values not wholly found, {len(s['false'])} false detections; e.g.")
            rng = random.Random(1)
            for lang, kind, ctx, got in rng.sample(s["misses"], min(args.show, len(s["misses"]))):
                print(f"- missed {lang} {kind}: `{ctx}` (found: {got})")
            for lang, kind, hit, ctx in rng.sample(s["false"], min(args.show, len(s["false"]))):
                print(f"- false {lang} {kind}: `{hit}` in `{ctx}`")
            print()

    # 2. what the tools find in the unplanted excerpts
    chars = collections.Counter()
    for d in docs:
        chars[d["lang"]] += len(d["text"])
    print("### Detections in the excerpts before planting (real personal data or false: judge by the samples)\n")
    print("| tool | lang | M chars | " + " | ".join(TYPES) + " |")
    print("|---|---|---:|" + "---:|" * len(TYPES))
    for t in tools:
        for lang in ("zh", "en", "ru"):
            cnt = collections.Counter(k for d, spans in zip(docs, results[t]["before"]) if d["lang"] == lang
                                      for _, _, k in spans)
            print(f"| {t} | {lang} | {chars[lang] / 1e6:.2f} | "
                  + " | ".join(str(cnt[k]) if k in SUPPORTS[t] else "-" for k in TYPES) + " |")
    print()
    for t in tools:
        zh = [(k, d["text"][a:b], d["text"][max(0, a - 10):b + 6].replace("\n", " "))
              for d, spans in zip(docs, results[t]["before"]) if d["lang"] == "zh" for a, b, k in spans]
        if zh:
            print(f"{t}, zh before planting, e.g.: "
                  + "; ".join(f"{k} `{ctx}`" for k, _, ctx in random.Random(2).sample(zh, min(args.show, len(zh)))))
    print()

    # 3. false changes on the Python docs
    print(f"### False changes on python-docs ({py_chars / 1e6:.2f} M characters)\n")
    false_changes([n for n, _ in docs_py], py_texts, results, "py", args.show, DOC_PHONES, DOC_VERSIONS)

    # 4. false changes on the fresh sets
    for key, title, _, _, phones, public, _, pages in fresh_sets:
        if not pages:
            continue
        print(f"### False changes on the {title} ({sum(len(t) for _, t in pages) / 1e6:.2f} M characters)\n")
        ok = false_changes([n for n, _ in pages], fresh_texts[key], results, key, args.show,
                           phones, set(), public, per_part=True)
        print("Counted as correct (real e-mail addresses; IP addresses and phone numbers the text writes):\n")
        for t in tools:
            print(f"- {t}: " + (", ".join(f"{s} ×{n}" if n > 1 else s for s, n in sorted(ok[t].items())) or "none"))
        print()

    # 5. throughput
    load1 = os.getloadavg()
    print(f"### Throughput, one core, median of {args.runs} (load average {load0[0]:.2f} before, "
          f"{load1[0]:.2f} after, {os.cpu_count()} CPUs)\n")
    print(f"| tool | excerpts MB/s ({mb_web:.1f} MB) | python-docs MB/s ({mb_py:.1f} MB) |"
          + "".join(f" {key} MB/s ({mb:.1f} MB) |" for key, mb in mb_fresh.items()))
    print("|---|---:|---:|" + "---:|" * len(mb_fresh))
    for t in tools:
        print(f"| {t} | {results[t]['web_mbs']:.2f} | {results[t]['py_mbs']:.2f} |"
              + "".join(f" {results[t][f'{key}_mbs']:.2f} |" for key in mb_fresh))
    print(f"\n({time.perf_counter() - t0:.0f} s in all)")


if __name__ == "__main__":
    require_shared()
    main()
