"""WARC output: request and response records written by warcio, one gzip member per record,
into ``<prefix>-<seq>.warc.gz.open`` files that are renamed to ``.warc.gz`` when full or closed.

A process killed mid-write leaves an ``.open`` file whose last member may be cut; ``repair``
keeps every complete member, drops the cut one and publishes the file, and tells which URLs
it holds, so that a resumed crawl neither loses nor repeats them.
"""

from __future__ import annotations

import io
import os
import zlib
from datetime import datetime, timezone
from pathlib import Path

OPEN = ".open"


def _complete_members(path: Path) -> int:
    """The byte length of the file's leading run of complete gzip members."""
    good = 0
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        try:
            d.decompress(data[pos:])
        except zlib.error:
            break
        if not d.eof:
            break
        pos = len(data) - len(d.unused_data)
        good = pos
    return good


def target_uris(path: Path) -> set[str]:
    """WARC-Target-URI of every response record in a WARC file."""
    from warcio.archiveiterator import ArchiveIterator

    uris = set()
    with open(path, "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type == "response":
                uris.add(record.rec_headers.get_header("WARC-Target-URI"))
    return uris


def repair(folder: Path, prefix: str) -> set[str]:
    """Publish the ``.open`` files a killed process of this prefix left, cut to their complete
    records; return the response URIs they hold."""
    uris: set[str] = set()
    for path in sorted(folder.glob(f"{prefix}-*.warc.gz{OPEN}")):
        good = _complete_members(path)
        with open(path, "r+b") as f:
            f.truncate(good)
        final = path.with_name(path.name[: -len(OPEN)])
        if good:
            uris |= target_uris(path)
            os.replace(path, final)
        else:
            path.unlink()
    return uris


class RotatingWarcWriter:
    """Writes request/response pairs; rotates past ``max_bytes``; flushes every record."""

    def __init__(self, folder: Path, prefix: str, max_bytes: int, software: str = "corpus-crawler"):
        self.folder, self.prefix, self.max_bytes, self.software = folder, prefix, max_bytes, software
        folder.mkdir(parents=True, exist_ok=True)
        done = [int(p.name[len(prefix) + 1:].split(".")[0]) for p in folder.glob(f"{prefix}-*.warc.gz")]
        self.seq = max(done, default=-1) + 1
        self.file = None
        self.writer = None

    def _open(self):
        from warcio.warcwriter import WARCWriter

        name = f"{self.prefix}-{self.seq:05d}.warc.gz"
        self.path = self.folder / (name + OPEN)
        self.file = open(self.path, "wb")
        self.writer = WARCWriter(self.file, gzip=True)
        info = self.writer.create_warcinfo_record(name, {"software": self.software, "format": "WARC File Format 1.1"})
        self.writer.write_record(info)
        self.file.flush()

    def write(self, url: str, status: int, reason: str, headers: list[tuple[str, str]], body: bytes,
              request_line: str, request_headers: list[tuple[str, str]], ip: str | None) -> int:
        """Write one exchange; returns the bytes written."""
        from warcio.statusandheaders import StatusAndHeaders

        if self.file is None:
            self._open()
        start = self.file.tell()
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")]
        http = StatusAndHeaders(f"{status} {reason}".strip(), kept + [("Content-Length", str(len(body)))],
                                protocol="HTTP/1.1")
        extra = {"WARC-Date": now}
        if ip:
            extra["WARC-IP-Address"] = ip
        response = self.writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                                                  warc_headers_dict=extra)
        req_http = StatusAndHeaders(request_line, request_headers, is_http_request=True)
        request = self.writer.create_warc_record(
            url, "request", http_headers=req_http,
            warc_headers_dict={"WARC-Date": now, "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID")})
        self.writer.write_record(request)
        self.writer.write_record(response)
        self.file.flush()
        written = self.file.tell() - start
        if self.file.tell() >= self.max_bytes:
            self.close()
        return written

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            os.replace(self.path, self.path.with_name(self.path.name[: -len(OPEN)]))
            self.file = self.writer = None
            self.seq += 1
