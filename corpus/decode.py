"""Bytes to text the way a browser does it, for every reader that receives bytes.

The order follows the WHATWG Encoding and HTML standards: a byte-order mark; the charset of the
HTTP ``Content-Type``; a ``<meta charset>`` or ``http-equiv`` declaration in the first 4 kB;
then, for an unlabelled page, UTF-8 if the bytes are valid UTF-8, else Firefox's own detector
(chardetng, through ``chardetng-py``). Labels map to decoders as browsers map them
(``webencodings``: ``gb2312`` and ``GBK`` decode as GB18030, ``big5`` as Big5-HKSCS,
``shift_jis`` as Windows-31J, ``euc-kr`` as Windows-949, ``iso-8859-1`` as Windows-1252). A
label that the bytes contradict (a "UTF-8" page full of GBK) is overruled by detection, as
long as the label's decoding would replace bytes and the detected one would not.

Decoding replaces invalid bytes, as browsers do; a text is undecodable only when more than a
quarter of its characters would be replacements.
"""

from __future__ import annotations

import codecs
import re

_META = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# WHATWG decoders that Python's codec for the same name does not match byte for byte
_SUPERSETS = {"gbk": "gb18030", "gb2312": "gb18030", "big5": "big5hkscs", "shift_jis": "cp932", "euc-kr": "cp949"}
MAX_REPLACED = 0.25


def codec_for(label: str | None) -> str | None:
    """The Python codec a browser would use for an encoding label, or None for an unknown label."""
    if not label:
        return None
    import webencodings

    encoding = webencodings.lookup(label.strip().strip("\"'"))
    if encoding is None or encoding.name in ("replacement", "x-user-defined"):
        return None
    return _SUPERSETS.get(encoding.name, encoding.codec_info.name)


def _declared(body: bytes, content_type: str | None, html: bool) -> str | None:
    """The HTTP charset, else (HTML only) the <meta> one."""
    if content_type and "charset=" in content_type.lower():
        codec = codec_for(content_type.lower().split("charset=")[-1].split(";")[0])
        if codec:
            return codec
    m = _META.search(body[:4096]) if html else None
    return codec_for(m.group(1).decode("ascii", "ignore")) if m else None


def _detect(body: bytes, tld: str | None) -> str:
    import chardetng_py

    hint = tld.encode("ascii", "ignore") if tld and tld.isascii() and tld.isalpha() else None
    return codec_for(chardetng_py.detect(body[:1_000_000], allow_utf8=True, tld=hint)) or "cp1252"


def _replaced(text: str) -> float:
    return text.count("\ufffd") / max(1, len(text))


def decode(body: bytes, content_type: str | None = None, url: str | None = None,
           html: bool = True) -> tuple[str | None, str]:
    """(text, codec) of a page or text file; (None, codec) when it is undecodable."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(codec, errors="replace"), codec
    declared = _declared(body, content_type, html)
    if declared == "utf-8" or declared is None:
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    tld = url.split("://", 1)[-1].split("/", 1)[0].rsplit(".", 1)[-1].split(":")[0].lower() if url else None
    if declared is not None:
        text = body.decode(declared, errors="replace")
        if "\ufffd" not in text:
            return text, declared
        detected = _detect(body, tld)
        if detected != declared:
            other = body.decode(detected, errors="replace")
            if _replaced(other) < _replaced(text) / 10:
                return other, detected
        return (text, declared) if _replaced(text) <= MAX_REPLACED else (None, declared)
    detected = _detect(body, tld)
    text = body.decode(detected, errors="replace")
    return (text, detected) if _replaced(text) <= MAX_REPLACED else (None, detected)


def looks_like_html(name: str, body: bytes) -> bool:
    if name.lower().endswith((".html", ".htm", ".xhtml", ".shtml", ".php", ".asp", ".aspx", ".jsp")):
        return True
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<head" in head or b"<body" in head
