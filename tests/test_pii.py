"""pii_redactor: personal data of real formats planted in real web text (zh, ru, en) is found at
its exact spans and replaced; real text full of numbers that are not personal data (Python's
"What's new" pages: versions, dates, issue numbers, sizes) keeps every character but its
e-mail and IP addresses; documents with personal data are dropped instead when asked; the originals
go to removed/ for audit, never to the curated documents."""

from __future__ import annotations

import gzip
import json
import random
import subprocess

import pytest

from tests.conftest import CORPUS, ROOT, shared_path

pytest.importorskip("phonenumbers", reason="pip install phonenumbers python-stdnum")
pytest.importorskip("stdnum", reason="pip install phonenumbers python-stdnum")

from corpus.filters.pii import PLACEHOLDER, PiiFinder, redact  # noqa: E402

# real formats; the numbers are valid (check digits, numbering plans) but belong to nobody known
PLANTED = {
    "zh": [("email", "zhang.wei@example.com.cn"), ("phone", "138 0013 8000"), ("phone", "(010) 6552 9988"),
           ("cn_id", "11010519491231002X"), ("card", "6222 0200 0112 3456 780"), ("ip", "202.96.134.133")],
    "ru": [("email", "ivan.petrov@mail.example.ru"), ("phone", "+7 495 123-45-67"), ("phone", "8 (912) 345-67-89"),
           ("iban", "DE89 3704 0044 0532 0130 00"), ("card", "4539 1488 0343 6467"), ("ip", "2001:4860:4860::8888")],
    "en": [("email", "j.smith+news@example.org"), ("phone", "(415) 555-2671"), ("phone", "+44 20 7946 0958"),
           ("card", "5500-0000-0000-0004"), ("secret", "AKIAIOSFODNN7EXAMPLE"), ("ip", "8.8.4.4"),
           ("secret", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8")],
}
LANG = {"zh": "zho_Hans", "ru": "rus_Cyrl", "en": "eng_Latn"}


def excerpts(lang: str, n: int) -> list[str]:
    out = []
    with open(shared_path("web-quality", "hplt2-excerpts.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["lang"] == LANG[lang]:
                out.append(row["text"])
    return out[:n]


@pytest.mark.parametrize("lang", ["zh", "ru", "en"])
def test_planted_personal_data_is_found_at_its_spans(lang):
    finder = PiiFinder()
    rng = random.Random(7)
    for i, text in enumerate(excerpts(lang, 30)):
        before = finder.find(text)  # what the real excerpt itself holds (hotel pages list phone numbers)
        kind, value = PLANTED[lang][i % len(PLANTED[lang])]
        cut = rng.choice([m for m in range(len(text)) if text[m] == " "] or [len(text)])
        planted = text[:cut] + (" " if lang != "zh" else "，") + value + " " + text[cut:]
        start = cut + 1
        found = finder.find(planted)
        assert (start, start + len(value), kind) in found, (lang, kind, value, found)
        assert len(found) == len(before) + 1, (value, before, found)
        out = redact(planted, found)
        assert value not in out and PLACEHOLDER[kind] in out


def test_text_full_of_numbers_that_are_not_personal_data_keeps_them():
    """Versions, dates, issue numbers, timestamps, byte counts, DOIs, slices: nothing changes but
    the e-mail addresses and the IPv6 example addresses the text spells out."""
    import ipaddress

    finder = PiiFinder()
    folder = shared_path("sites", "python-docs", "_sources", "whatsnew")
    total, changed, addresses = 0, [], set()
    for path in sorted(folder.glob("*.rst.txt")):
        text = path.read_text(encoding="utf-8")
        total += len(text)
        for a, b, kind in finder.find(text):
            if kind == "ip":
                addresses.add(text[a:b])
            elif kind != "email":
                changed.append((path.name, text[a:b], kind))
    assert total > 1_000_000
    assert changed == [], changed[:10]
    assert addresses == {"1080::8:800:200C:417A", "dead:beef:cafe:5417:affe:8FA3:deaf:feed"}
    assert all(ipaddress.ip_address(a).version == 6 for a in addresses)


@pytest.mark.parametrize("text, expected", [
    # the county code is the one in force at issue: 320311 dates from 1993, the holder from 1961
    ("身份证号：320311196108087783，", [("320311196108087783", "cn_id")]),
    ("The server was 8.8.4.4. Then", [("8.8.4.4", "ip")]),  # an address ending a sentence
    ("call 713-593-2764 x7351 or 209.459.8983 ext. 43", [("713-593-2764 x7351", "phone"), ("209.459.8983 ext. 43", "phone")]),
    ("王先生 13800138000 欢迎, звоните 89161234567", [("13800138000", "phone"), ("89161234567", "phone")]),
    ("Amex 3782 822463 10005, Maestro 6765490273242268, JCB 180078627546466",
     [("3782 822463 10005", "card"), ("6765490273242268", "card"), ("180078627546466", "card")]),
    ("请联系ynhouse@ynhouse.com。王力女士tenjie163@163.com联系人", [("ynhouse@ynhouse.com", "email"), ("tenjie163@163.com", "email")]),
    # dates glued to times, number lists, versions, decimals, ISBNs, case numbers: no personal data
    ("2018-11-1509:01近日 Old 04-24-2009, 12:30 AM 27.09.2015 10:44 1 3 6 10 5 9 2 7 4 8", []),
    ("zlib 1.2.0.1, [GCC 2.96 20000731], ISBN 0-596-00797-3, Дело N Ф04-7265/2007", []),
    # the digits of a longer number: a fraction, one in scientific notation (they pass Luhn, an ID's checks)
    ("mean 0.4539148803436467 s, 2.5500000000000004e-05 and 7.378282246310005e+21", []),
    ("ID 110105198001010016, x 3.440304197510231534 and 440304197510231534.25", [("110105198001010016", "cn_id")]),
    # a run of one- or two-digit numbers (a count, a table row); amounts in thousands groups
    ("row 21 22 23 24 25 26 then 10 20 30 40 50 ...", []),
    ("cost 164 020 300,54 руб., Total: 495 691 371 245.76 USD", []),
    # dotted section numbers are not addresses; an address ending a sentence still is
    ("see clause 5.1.4.2, section 7.3.2.1 and § 9.4.1.2; server 9.9.9.9.", [("9.9.9.9", "ip")]),
    ("6.4.4.2. Floating constants\n  9.26.3.1. Examples\nResolver: 8.8.4.4. Then\n9.9.9.9 Quad9",
     [("8.8.4.4", "ip"), ("9.9.9.9", "ip")]),
])
def test_formats_pages_write_and_numbers_that_only_look_like_them(text, expected):
    assert [(text[a:b], kind) for a, b, kind in PiiFinder().find(text)] == expected


# numbers of technical documentation that only look like personal data (each was found by an earlier
# version), with the personal data next to them that is still found
TECHNICAL = [
    # a time of day, with a fraction and a UTC offset, or compact; a date of any year glued to a time
    ("at 04:00:55.033224-03 and 17:56:43.323640-06 (server time)", []),
    ("from 5667-12-04 03:09:00 to -8967-01-27 05:20:00\n030621-08\tISO 8601 basic", []),
    ("Tel. 8 495 123-45-67 10:00-18:00", [("8 495 123-45-67", "phone")]),  # the hour is cut off, not the number
    # a number before a bracket it does not close; a value glued to "="; a range of lines
    ("the limit is 2147483646 (2^31 - 2) rows; $ sysctl -w vm.dirty_bytes=15032385536", []),
    ("src?ln=0330-5898 and see lines 1698-1798 here", []),
    # a path or a ratio; a row of a log or a table; a round number
    ("processed: 25000/25000, cd 498757/54508; Tel. 089/1234567", [("089/1234567", "phone")]),
    ("\n0 223 7354 0 5245086007 274306\n0 727 9463 0 8202642108 617581\n", []),
    ("bench --heap 20000000 84 --size 5", []),
    # a heading's number before a title in lower case; a release of a series the text names
    ("\n12.4.2.3. pg_stat_io\n21.3.4.1.\u00a0initdb options\n", []),
    ("Changes in 7.4.19:\n- A regression relative to 7.4.19.2 was fixed.", []),
    # MAC (EUI-48/64) addresses are no IPv6 addresses
    ("macaddr8 '1c:2b:3a:4d:5e:6f:70:81', 3c:5a:b4:ff:fe:12:9e:07; dns 2001:4860:4860::8844",
     [("2001:4860:4860::8844", "ip")]),
    # a float's mantissa, multiplied and then alone, is no card number
    ("4518730199261040*2**-52, then 4518730199261040 again; card 4539 1488 0343 6467",
     [("4539 1488 0343 6467", "card")]),
    # credentials of a template, for localhost or an example host; real ones are found
    ("postgres://app:password@db.acme.io/x mysql://root:Zq9v!@127.0.0.1:3306/ redis://u:${REDIS_PASS}@cache.acme.io/0 "
     "http://bob:Tr0ub4dor@mail.example.com/ https://deploy:Xk3-pQ9z@git.acme.io/r", [("deploy:Xk3-pQ9z", "secret")]),
]


@pytest.mark.parametrize("text, expected", TECHNICAL)
def test_numbers_of_technical_documentation_are_no_personal_data(text, expected):
    assert [(text[a:b], kind) for a, b, kind in PiiFinder().find(text)] == expected


def test_finder_refuses_unknown_types_and_regions():
    with pytest.raises(ValueError, match="unknown PII type 'passport'"):
        PiiFinder(types=["email", "passport"])
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        PiiFinder(regions=["XX"])


@pytest.mark.parametrize("replace", ["placeholder", "drop_document"])
def test_a_run_redacts_and_keeps_the_originals_apart(tmp_path, replace):
    docs = [{"id": "a", "text": "Write to zhang.wei@example.com.cn or call 138 0013 8000 before 2024-05-01."},
            {"id": "b", "text": "Python 3.11.4 was released on 2023-06-06; 1,024 bytes cost $12.50."}]
    with gzip.open(tmp_path / "in.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    out = tmp_path / "run"
    (tmp_path / "p.yaml").write_text(
        f"output_dir: {out}\nsave_removed: true\nexecutor: {{type: local, tasks: 1, workers: 1}}\nsteps:\n"
        f"  - jsonl_reader: {{paths: ['{tmp_path}/in.jsonl.gz']}}\n  - pii_redactor: {{replace: {replace}}}\n"
        "  - jsonl_writer: {path: docs}\n")
    r = subprocess.run([*CORPUS, "run", str(tmp_path / "p.yaml")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    def read(folder):
        rows = []
        for path in sorted(folder.rglob("*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                rows += [json.loads(line) for line in f]
        return {row["id"]: row for row in rows}

    kept, removed = read(out / "docs"), read(out / "removed")
    assert kept["b"]["text"] == docs[1]["text"]
    if replace == "placeholder":
        assert kept["a"]["text"] == "Write to <EMAIL> or call <PHONE> before 2024-05-01."
    else:
        assert "a" not in kept
    assert removed["a#pii"]["text"] == docs[0]["text"] and removed["a#pii"]["metadata"]["pii"] == {"email": 1, "phone": 1}
    step = json.loads((out / "summary.json").read_text())["steps"][1]
    if replace == "placeholder":
        assert step["lines_removed"] == {"pii_email": 1, "pii_phone": 1} and step["documents_out"] == 2
    else:
        assert step["dropped"] == {"pii": 1} and step["documents_out"] == 1
