"""Scale benchmark: every step and stage at three corpus sizes, beside datatrove's equivalent.

    python bench/scale.py build                      # the corpus at 10k / 50k / 200k documents (cached)
    python bench/scale.py run --units io,dedup       # measure; results JSON + markdown tables
    python bench/scale.py run --quick                # a smoke run at 500 / 1,000 / 2,000 documents
    python bench/scale.py report data/scale/results-<stamp>.json   # the tables again

**The corpus** is real text that anyone can fetch through Debian's archive: the HTML pages of 95
documentation packages of Debian 12 (``PACKAGES``, versions pinned: rust-doc, openjdk-17-doc,
the Python, Linux, Boost, libstdc++, Qt, pandas, SciPy, Erlang, GHC, OpenCV, wxWidgets,
SageMath... manuals and API references, and the LibreOffice and GIMP help in 28 to 33
languages), fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into
``data/scale/src``; plus ../shared/data: the 6,496 HPLT v2 web excerpts
(``web-quality/hplt2-excerpts.jsonl``, each wrapped in a minimal HTML page) and the HTML
response records of the Common Crawl, Dolma and wget WARCs that ``pipelines/web.yaml`` reads.
API references bring many near-duplicate pages (rustdoc's trait implementations, javadoc and
Doxygen class pages, the same help page in en and en-gb), which dedup should meet.

Every HTML page of at most ``--max-html-bytes`` (1 MB) is a candidate; candidates are ordered
by a keyed hash of their id (``SEED``), so that every size is a uniform sample of the whole and
each size is a prefix of the next. Their main text is extracted once with ``trafilatura.extract``
(web.yaml's extraction settings) in that order, in cached chunks of 4,096 candidates
(``data/scale/pool-<key>/``); pages without text are left out. A size of N documents is then the
first N pages with text:

- ``sizes/N/docs.jsonl.gz``: one file, ``{"id", "text", "url", "source"}`` per line;
- ``sizes/N/parts/part-0000k.jsonl.gz``: the same documents in ``--parts`` (8) contiguous files,
  so that tasks share the work (readers give files to tasks);
- ``sizes/N/warc/part-0000k.warc.gz``: the pages' HTML as WARC response records (warcio, with
  HTTP headers, ``WARC-Identified-Payload-Type``, record ids derived from the page ids and a
  fixed date), for the whole web.yaml chain;
- ``sizes/N/manifest.json``: documents, text and HTML bytes, documents per source, sha256 of every file.

Nothing is random and nothing depends on the machine: gzip headers carry no time, file lists are
sorted, the corpus key hashes the package versions and .deb checksums, the extraction settings
and the trafilatura version; a size whose manifest has the current key is not rebuilt.

**Units** (``--units``), each run for every size by ours and by datatrove's equivalent, one after
the other, each in its own process tree, on the same input, with the same tasks and workers
(``--tasks 2 --workers 2``):

- ``io``: jsonl_reader -> jsonl_writer | datatrove JsonlReader -> JsonlWriter.
- ``text``: web.yaml's steps between extraction and dedup (read from the file when the bench
  runs: line_cleaner, language_id, language_filter, adult_spam_filter, gopher_quality,
  gopher_repetition, fineweb_quality, quality_classifier) | datatrove LanguageFilter (lid.176,
  web.yaml's languages and threshold) + GopherRepetition + GopherQuality + C4Quality + FineWebQuality
  (FineWeb's order and settings).
- ``dedup``: jsonl_reader -> minhash_dedup (web.yaml's parameters) -> jsonl_writer | datatrove
  MinhashDedupSignature, Buckets (one task per bucket), Cluster, Filter (FineWeb's configuration).
- ``tokenizer``: the ``tokenizer:`` and ``shards:`` stages of web.yaml over the documents
  (sentencepiece BPE, Arrow shards) | a byte-level BPE of the same vocabulary trained with
  Hugging Face ``tokenizers``, then datatrove's DocumentTokenizer.
- ``chain``: web.yaml's steps as they are (warc_reader on the size's WARC files; the stages after
  the steps left out) | datatrove WarcReader -> Trafilatura -> LanguageFilter -> Gopher, C4,
  FineWeb filters -> the four MinHash stages.

Ours runs through the CLI (``corpus run`` on a YAML file written into the run folder, so the
measured thing is what users run: its imports, progress display and report.html included);
datatrove's through ``python -m bench.scale_datatrove`` on a JSON spec. Measured per run:

- wall seconds; CPU seconds (user + system) of the whole process tree, exact: a wrapper process
  made a child subreaper waits for every descendant and reads ``RUSAGE_CHILDREN``;
- documents/s and MB/s per core: documents (or MB) over CPU seconds. MB is the documents' text
  (UTF-8) for the JSONL units, the pages' HTML for ``chain``;
- peak RSS per process: the largest ``ru_maxrss`` of any process of the tree (exact), beside
  the peak sampled with psutil; peak of the tree: the largest sum of the RSS of every process of
  the tree, sampled with psutil every ``--interval`` seconds (RSS counts pages that forked
  processes share in each of them);
- peak PSS per process and of the tree, sampled the same way: the proportional set size divides
  each shared page among the processes sharing it (a model loaded once before fork and shared
  copy-on-write counts once over the tree); the report names the process whose PSS peaked; and
  the peak USS and PSS of a worker (a process forked from one of the same command line: the
  pool's workers, not the forkserver that holds the shared models nor the runner; USS, the unique
  set size, is the pages only that worker holds: what one more worker adds);
- disk: the output folder's size on disk (``du``), when the run ends;
- seconds per step: ours from summary.json (summed over tasks), datatrove's from its stats.json.

Output: per unit, a markdown table, the ratio ours/datatrove at each size, and the growth of
CPU time per document and of peak memory per process from the smallest size to the largest
(and per step, the growth of seconds per document); the whole results in
``data/scale/results-<stamp>.json``. ``--repeat N`` runs everything N times and keeps medians.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import html as html_lib
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import SHARED  # noqa: E402

DATA = ROOT / "data" / "scale"
WEB_YAML = ROOT / "pipelines" / "web.yaml"
SIZES = (10_000, 50_000, 200_000)
QUICK_SIZES = (500, 1_000, 2_000)
UNITS = ("io", "text", "dedup", "tokenizer", "chain")
TOOLS = ("ours", "datatrove")
SEED = b"corpus-scale-v1"
CHUNK = 4096
EXTRACT = {"favor_precision": True, "include_tables": True, "include_comments": False, "deduplicate": False}
EXTRACT_TIMEOUT = 60  # seconds per page while building; a page that takes longer is left out
WARC_DATE = "2024-01-01T00:00:00Z"
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
# from ../shared/data: web excerpts, and the WARC files of real web pages that web.yaml reads by default
SHARED_EXCERPTS = "web-quality/hplt2-excerpts.jsonl"
SHARED_WARCS = ("warc/commoncrawl-whirlwind/whirlwind.warc.gz", "warc/dolma/sample-0000.warc.gz",
                "warc/dolma/sample-0001.warc.gz", "warc/ia-web-commons/IAH-urls-wget.warc.gz",
                "warc/resiliparse/clueweb-quirk.warc.gz", "warc/resiliparse/warcfile.warc.gz")

# Debian 12 (bookworm) documentation packages with HTML pages, at the versions the corpus was
# built from (`apt-get download NAME=VERSION`; a version the mirror no longer has is replaced by
# the mirror's, with a warning, and the corpus key changes).
PACKAGES = {
    "cmake-doc": "3.25.1-1", "debian-handbook": "11.20220922", "erlang-doc": "1:25.2.3+dfsg-1+deb12u4",
    "gap-doc": "4.12.1-2", "ghc-doc": "9.0.2-4", "gnucash-docs": "4.13-1",
    "kicad-doc-en": "6.0.11+dfsg-1", "kicad-doc-ja": "6.0.11+dfsg-1", "kicad-doc-ru": "6.0.11+dfsg-1",
    "kicad-doc-zh": "6.0.11+dfsg-1", "libboost1.81-doc": "1.81.0-5+deb12u1", "libeigen3-doc": "3.4.0-4",
    "libglib2.0-doc": "2.74.6-2+deb12u9", "libgtk-3-doc": "3.24.38-2~deb12u3", "libsdl2-doc": "2.26.5+dfsg-1",
    "libstdc++-12-doc": "12.2.0-14+deb12u1", "linux-doc-6.1": "6.1.192-3", "llvm-15-doc": "1:15.0.6-4",
    "maxima-doc": "5.46.0-11", "opencv-doc": "4.6.0+dfsg-12", "openjdk-17-doc": "17.0.21.1+2-1~deb12u1",
    "postgresql-doc-15": "15.20-0+deb12u1", "python-astropy-doc": "5.2.1-2+deb12u1",
    "python-django-doc": "3:3.2.25-0+deb12u7", "python-pandas-doc": "1.5.3+dfsg-2", "python-scipy-doc": "1.10.1-2",
    "python-sklearn-doc": "1.2.1+dfsg-1", "python-sqlalchemy-doc": "1.4.46+ds1-1", "python3.11-doc": "3.11.2-6+deb12u9",
    "qtbase5-doc-html": "5.15.8+dfsg-11+deb12u3", "qtdeclarative5-doc-html": "5.15.8+dfsg-3",
    "rust-doc": "1.63.0+dfsg1-2", "sagemath-doc": "9.5-6", "wx3.2-doc": "3.2.2+dfsg-2",
    **{f"gimp-help-{lang}": "2.10.34-2" for lang in (
        "ca cs da de el en en-gb es fa fi fr hr hu it ja ko lt nl nn pt pt-br ro ru sl sv uk zh-cn").split()},
    **{f"libreoffice-help-{lang}": "4:7.4.7-1+deb12u14" for lang in (
        "ca cs da de dz el en-gb en-us es et eu fi fr gl hi hu id it ja km ko nl om pl pt pt-br ru sk sl sv tr vi "
        "zh-cn zh-tw").split()},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gz_writer(path: Path):
    """A gzip file with no name and no time in its header (the same bytes on every build)."""
    return gzip.GzipFile(filename="", mode="wb", fileobj=open(path, "wb"), mtime=0, compresslevel=6)


def close_gz(f) -> None:
    raw = f.fileobj
    f.close()
    raw.close()


# ===================================================================== build: sources

def fetch_packages(debs: Path) -> dict[str, dict]:
    """The .deb of every package (downloaded once): version and sha256."""
    debs.mkdir(parents=True, exist_ok=True)
    info = {}
    for name, version in sorted(PACKAGES.items()):
        files = sorted(debs.glob(f"{name}_*.deb"))
        found = {deb_field(f, "Version"): f for f in files if deb_field(f, "Package") == name}
        if version not in found:
            log(f"build: apt-get download {name}={version}")
            r = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, capture_output=True, text=True)
            if r.returncode != 0:
                log(f"build: WARNING {name}={version} is not on the mirror ({r.stderr.strip().splitlines()[-1:]}); "
                    "taking the mirror's version (the corpus will differ)")
                subprocess.run(["apt-get", "download", name], cwd=debs, check=True, capture_output=True)
            files = sorted(debs.glob(f"{name}_*.deb"))
            found = {deb_field(f, "Version"): f for f in files if deb_field(f, "Package") == name}
        chosen = found.get(version) or found[sorted(found)[-1]]
        info[name] = {"version": deb_field(chosen, "Version"), "deb": chosen.name, "sha256": sha256_file(chosen)}
    return info


def deb_field(path: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(path), field], capture_output=True, text=True, check=True).stdout.strip()


def unpack(info: dict[str, dict], debs: Path, src: Path) -> None:
    for name, meta in info.items():
        marker = src / name / f".unpacked-{meta['sha256'][:16]}"
        if marker.exists():
            continue
        log(f"build: dpkg -x {meta['deb']}")
        shutil.rmtree(src / name, ignore_errors=True)
        (src / name).mkdir(parents=True)
        subprocess.run(["dpkg", "-x", str(debs / meta["deb"]), str(src / name)], check=True)
        marker.touch()


def shared_pages(src: Path) -> tuple[list[dict], dict]:
    """Pages from ../shared/data, written as HTML files under src/_shared: the HPLT v2 excerpts
    (each one in a minimal page: its text in one paragraph) and the HTML responses of the WARC
    files web.yaml reads by default (``SHARED_WARCS``)."""
    from warcio.archiveiterator import ArchiveIterator

    out: list[dict] = []
    if not SHARED.exists():
        log(f"build: {SHARED} is absent: the corpus is the Debian pages alone")
        return out, {}
    folder = src / "_shared"
    (folder / "hplt2").mkdir(parents=True, exist_ok=True)
    (folder / "web").mkdir(parents=True, exist_ok=True)
    excerpts = SHARED / SHARED_EXCERPTS
    for line in excerpts.open(encoding="utf-8"):
        r = json.loads(line)
        lang = r["lang"].split("_")[0]
        page = (f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{r["id"]}</title></head>\n'
                f'<body><article><p>{html_lib.escape(r["text"])}</p></article></body></html>\n').encode()
        path = folder / "hplt2" / f"{r['id']}.html"
        if not path.exists() or path.read_bytes() != page:
            path.write_bytes(page)
        out.append({"id": f"shared-hplt2/{r['id']}", "path": str(path.relative_to(src)), "source": "shared-hplt2",
                    "url": f"https://{r['id']}.hplt2.invalid/"})
    k = 0
    for f in [SHARED / rel for rel in SHARED_WARCS if (SHARED / rel).exists()]:
        try:
            with open(f, "rb") as stream:
                for rec in ArchiveIterator(stream):
                    if rec.rec_type != "response" or not rec.http_headers:
                        continue
                    ctype = rec.http_headers.get_header("Content-Type") or ""
                    if "html" not in ctype.lower():
                        continue
                    url = rec.rec_headers.get_header("WARC-Target-URI")
                    body = rec.content_stream().read()
                    if not body or not url:
                        continue
                    path = folder / "web" / f"{k:05d}.html"
                    path.write_bytes(body)
                    out.append({"id": f"shared-web/{k:05d}", "path": str(path.relative_to(src)), "source": "shared-web",
                                "url": url})
                    k += 1
        except Exception as e:  # noqa: BLE001  (a quirky WARC: keep what was read)
            log(f"build: {f}: stopped at {type(e).__name__}: {e}")
    return out, shared_fingerprint()


def candidates(info: dict[str, dict], src: Path, max_html: int) -> tuple[list[dict], dict]:
    """Every HTML page (regular file, not a link, 1 byte to max_html), ordered by a keyed hash of
    its id."""
    out, skipped = [], collections.Counter()
    for name in sorted(info):
        base = src / name
        for root, dirs, files in os.walk(base):
            dirs.sort()
            for fn in sorted(files):
                if not fn.lower().endswith(HTML_SUFFIXES):
                    continue
                path = Path(root) / fn
                if path.is_symlink() or not path.is_file():
                    skipped["link"] += 1
                    continue
                size = path.stat().st_size
                if size == 0 or size > max_html:
                    skipped["empty" if size == 0 else "too_large"] += 1
                    continue
                rel = str(path.relative_to(base))
                out.append({"id": f"{name}/{rel}", "path": f"{name}/{rel}", "source": name,
                            "url": f"https://{name}.debian-doc.invalid/{rel.removeprefix('usr/share/doc/')}"})
    shared, shared_meta = shared_pages(src)
    out += shared
    out.sort(key=lambda c: hashlib.blake2b(c["id"].encode(), key=SEED, digest_size=16).digest())
    return out, {"skipped": dict(skipped), "shared": shared_meta}


# ===================================================================== build: extraction

def _init_worker():
    import logging

    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGALRM, _alarm)


def _alarm(signum, frame):
    raise TimeoutError


def _extract(path: str) -> tuple[str | None, str]:
    import trafilatura

    try:
        signal.alarm(EXTRACT_TIMEOUT)
        text = trafilatura.extract(Path(path).read_bytes(), **EXTRACT)
    except TimeoutError:
        return None, "timeout"
    except Exception as e:  # noqa: BLE001
        return None, f"error:{type(e).__name__}"
    finally:
        signal.alarm(0)
    return (text, "ok") if text and text.strip() else (None, "no_text")


class Pool:
    """The extracted candidates, chunk by chunk, extracted on first need."""

    def __init__(self, folder: Path, cands: list[dict], src: Path, jobs: int):
        self.folder, self.cands, self.src, self.jobs = folder, cands, src, jobs
        self._mp = None

    def chunk(self, k: int) -> list[dict]:
        path = self.folder / f"chunk-{k:05d}.jsonl.gz"
        part = self.cands[k * CHUNK:(k + 1) * CHUNK]
        if not path.exists():
            if self._mp is None:
                import multiprocessing as mp

                self._mp = mp.get_context("fork").Pool(self.jobs, initializer=_init_worker, maxtasksperchild=2000)
            t = time.perf_counter()
            results = self._mp.map(_extract, [str(self.src / c["path"]) for c in part], chunksize=16)
            tmp = path.with_suffix(".tmp")
            f = gz_writer(tmp)
            for c, (text, why) in zip(part, results):
                f.write((json.dumps({"id": c["id"], "text": text, "why": why}, ensure_ascii=False) + "\n").encode())
            close_gz(f)
            tmp.rename(path)
            log(f"build: extracted chunk {k + 1}/{self.chunks} ({len(part)} pages, {time.perf_counter() - t:.0f}s)")
        rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
        assert [r["id"] for r in rows] == [c["id"] for c in part], f"{path} is stale: remove {self.folder}"
        return [{**c, "text": r["text"]} for c, r in zip(part, rows) if r["text"]]

    @property
    def chunks(self) -> int:
        return -(-len(self.cands) // CHUNK)

    def first(self, n: int) -> list[dict]:
        docs: list[dict] = []
        for k in range(self.chunks):
            if len(docs) >= n:
                break
            docs += self.chunk(k)
        if len(docs) < n:
            raise SystemExit(f"the pool holds {len(docs):,} pages with text, fewer than the {n:,} asked for")
        return docs[:n]

    def close(self):
        if self._mp is not None:
            self._mp.close()
            self._mp.join()


# ===================================================================== build: sizes

def write_size(folder: Path, docs: list[dict], src: Path, parts: int, key: str) -> dict:
    import uuid

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "parts").mkdir(parents=True)
    (tmp / "warc").mkdir()
    n = len(docs)
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    lines = [(json.dumps({"id": d["id"], "text": d["text"], "url": d["url"], "source": d["source"]}, ensure_ascii=False)
              + "\n").encode() for d in docs]
    single = gz_writer(tmp / "docs.jsonl.gz")
    for line in lines:
        single.write(line)
    close_gz(single)
    html_bytes = 0
    for i in range(parts):
        f = gz_writer(tmp / "parts" / f"part-{i:05d}.jsonl.gz")
        for line in lines[bounds[i]:bounds[i + 1]]:
            f.write(line)
        close_gz(f)
        with open(tmp / "warc" / f"part-{i:05d}.warc.gz", "wb") as out:
            writer = WARCWriter(out, gzip=True)
            for d in docs[bounds[i]:bounds[i + 1]]:
                body = (src / d["path"]).read_bytes()
                html_bytes += len(body)
                try:
                    body.decode("utf-8")
                    ctype = "text/html; charset=utf-8"
                except UnicodeDecodeError:
                    ctype = "text/html"  # the readers sniff <meta charset> or detect it
                http = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                        protocol="HTTP/1.1")
                rec = writer.create_warc_record(
                    d["url"], "response", payload=io.BytesIO(body), http_headers=http,
                    warc_headers_dict={"WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, d['id'])}>",
                                       "WARC-Date": WARC_DATE, "WARC-Identified-Payload-Type": "text/html"})
                writer.write_record(rec)
    manifest = {
        "key": key, "docs": n, "text_bytes": sum(len(d["text"].encode()) for d in docs), "html_bytes": html_bytes,
        "parts": parts, "first_id": docs[0]["id"], "last_id": docs[-1]["id"],
        "sources": dict(sorted(collections.Counter(d["source"] for d in docs).items())),
        "files": {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                  for p in sorted(tmp.rglob("*")) if p.is_file()},
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return manifest


def build(sizes, parts: int = 8, jobs: int = 2, max_html: int = 1_000_000) -> dict[int, dict]:
    """The corpus at every size (cached); returns their manifests."""
    import trafilatura

    DATA.mkdir(parents=True, exist_ok=True)
    debs, src = DATA / "debs", DATA / "src"
    info = fetch_packages(debs)
    unpack(info, debs, src)
    key_src = {"packages": info, "shared": shared_fingerprint(), "max_html": max_html, "seed": SEED.decode(),
               "extract": EXTRACT, "trafilatura": trafilatura.__version__, "chunk": CHUNK}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:12]
    folder = DATA / f"pool-{key}"
    folder.mkdir(exist_ok=True)
    cand_file = folder / "candidates.json"
    if cand_file.exists():
        saved = json.loads(cand_file.read_text())
        cands, cmeta = saved["candidates"], saved["meta"]
    else:
        log("build: listing the pages")
        cands, cmeta = candidates(info, src, max_html)
        tmp = cand_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key_source": key_src, "meta": cmeta, "candidates": cands}))
        tmp.rename(cand_file)
    log(f"build: {len(cands):,} candidate pages from {len(info)} packages + shared data (key {key})")
    manifests = {}
    pool = Pool(folder, cands, src, jobs)
    try:
        for n in sorted(sizes):
            out = DATA / "sizes" / str(n)
            mf = out / "manifest.json"
            if mf.exists() and json.loads(mf.read_text()).get("key") == key and json.loads(mf.read_text()).get("parts") == parts:
                manifests[n] = json.loads(mf.read_text())
                continue
            t = time.perf_counter()
            docs = pool.first(n)
            manifests[n] = write_size(out, docs, src, parts, key)
            log(f"build: size {n:,}: {manifests[n]['text_bytes'] / 1e6:.1f} MB text, {manifests[n]['html_bytes'] / 1e6:.1f} MB "
                f"HTML, written in {time.perf_counter() - t:.0f}s")
    finally:
        pool.close()
    return manifests


def shared_fingerprint() -> dict:
    """sha256 of every shared file the corpus takes pages from."""
    return {rel: sha256_file(SHARED / rel) for rel in (SHARED_EXCERPTS, *SHARED_WARCS) if (SHARED / rel).exists()}


# ===================================================================== run: measuring

def measure_child(out_json: str, cmd: list[str]) -> None:
    """The wrapper (``scale.py _measure``): a child subreaper, so that every descendant, orphans
    included, is reaped here and its CPU time and peak RSS reach RUSAGE_CHILDREN."""
    import ctypes
    import resource

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    t = time.perf_counter()
    p = subprocess.Popen(cmd)
    rc = p.wait()
    cmd_wall = time.perf_counter() - t
    while True:  # orphans reparented to us
        try:
            os.wait()
        except ChildProcessError:
            break
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(out_json).write_text(json.dumps({"rc": rc, "wall_s": time.perf_counter() - t, "cmd_wall_s": cmd_wall,
                                          "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024}))


def is_forked_worker(p) -> bool:
    """A pool worker: forked (not exec'd) from a process of the same command line, as the workers
    of a forkserver or of a forking pool are; the forkserver, the runner and the wrapper are not."""
    try:
        parent = p.parent()
        return parent is not None and parent.cmdline() == p.cmdline()
    except Exception:  # gone, or not ours
        return False


def process_label(p) -> str:
    """A short name for a process of the tree: its command line's module or script, or its name."""
    try:
        cmd = p.cmdline()
    except Exception:  # gone, or not ours
        return "?"
    for i, a in enumerate(cmd):
        if a == "-m" and i + 1 < len(cmd):
            return cmd[i + 1]
        if a == "-c":
            return "python -c " + " ".join(cmd[i + 1:])[:60]
    return " ".join(Path(a).name if a.startswith("/") else a for a in cmd[:3])[:80]


def measure(cmd: list[str], folder: Path, env: dict, interval: float, timeout: float) -> dict:
    import psutil

    folder.mkdir(parents=True, exist_ok=True)
    out_json = folder / "measure.json"
    logf = open(folder / "log.txt", "wb")
    load_before = os.getloadavg()
    sampler_cpu = time.process_time()
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_measure", str(out_json), "--", *cmd],
                            stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
    wrapper = psutil.Process(proc.pid)
    peak_tree = peak_proc = peak_tree_pss = peak_proc_pss = worker_pss = worker_uss = 0
    peak_who = ""
    forked: dict[int, bool] = {}  # pid -> a worker: forked from a process of the same command line
    most, samples, timed_out = 0, 0, False
    while proc.poll() is None:
        try:
            kids = wrapper.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        total = total_pss = 0
        for k in kids:
            try:
                mem = k.memory_full_info()  # rss and pss (smaps_rollup)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total, total_pss = total + mem.rss, total_pss + mem.pss
            peak_proc = max(peak_proc, mem.rss)
            if mem.pss > peak_proc_pss:
                peak_proc_pss, peak_who = mem.pss, process_label(k)
            if k.pid not in forked:
                forked[k.pid] = is_forked_worker(k)
            if forked[k.pid]:
                worker_pss, worker_uss = max(worker_pss, mem.pss), max(worker_uss, mem.uss)
        peak_tree, most, samples = max(peak_tree, total), max(most, len(kids)), samples + 1
        peak_tree_pss = max(peak_tree_pss, total_pss)
        if time.perf_counter() - t > timeout:
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(interval)
    proc.wait()
    logf.close()
    res = json.loads(out_json.read_text()) if out_json.exists() else {"rc": proc.returncode}
    res.update({"timed_out": timed_out, "peak_tree_mb": peak_tree / 2**20, "peak_proc_sampled_mb": peak_proc / 2**20,
                "peak_pss_mb": peak_proc_pss / 2**20, "peak_pss_process": peak_who,
                "peak_worker_pss_mb": worker_pss / 2**20, "peak_worker_uss_mb": worker_uss / 2**20, "peak_tree_pss_mb": peak_tree_pss / 2**20,
                "max_processes": most, "samples": samples, "sampler_cpu_s": time.process_time() - sampler_cpu,
                "load_before": load_before, "load_after": os.getloadavg()})
    if "user_s" in res:
        res["cpu_s"] = res["user_s"] + res["sys_s"]
    return res


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes on disk (allocated blocks, as du) and apparent bytes of a folder."""
    used = apparent = 0
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if p.is_file() and not p.is_symlink():
            used += st.st_blocks * 512
            apparent += st.st_size
    return used, apparent


def count_docs(folder: Path) -> int | None:
    files = sorted(folder.glob("*.jsonl.gz")) if folder.exists() else []
    if not files:
        return None
    n = 0
    for f in files:
        with gzip.open(f, "rb") as g:
            n += sum(1 for _ in g)
    return n


# ===================================================================== run: the units

def web_config() -> dict:
    import yaml

    return yaml.safe_load(WEB_YAML.read_text())


def web_text_steps(web: dict) -> list[dict]:
    """web.yaml's steps after extraction and before dedup (readers, extractors, barriers and
    writers left out), as they are in the file."""
    from corpus import catalog

    reg = catalog.steps()
    out = []
    for s in web["steps"]:
        name = next(iter(s))
        cls = reg[name]
        if getattr(cls, "is_reader", False) or getattr(cls, "makes_text", False) or getattr(cls, "barrier", False) \
                or getattr(cls, "output_param", None):
            continue
        out.append(s)
    return out


def web_step(web: dict, name: str) -> dict:
    return next((dict(s[name] or {}) for s in web["steps"] if name in s), {})


def ours_yaml(unit: str, size_dir: Path, out: Path, args) -> dict:
    import copy

    web = web_config()
    reader = {"jsonl_reader": {"paths": [str(size_dir / ("parts/*.jsonl.gz" if args.layout == "parts" else "docs.jsonl.gz"))]}}
    writer = {"jsonl_writer": {"path": "docs"}}
    cfg = {"name": f"scale-{unit}", "output_dir": str(out),
           "executor": {"type": "local", "tasks": args.tasks, "workers": args.workers}}
    if unit == "io":
        cfg["steps"] = [reader, writer]
    elif unit == "text":
        cfg["steps"] = [reader, *copy.deepcopy(web_text_steps(web)), writer]
    elif unit == "dedup":
        cfg["steps"] = [reader, {"minhash_dedup": web_step(web, "minhash_dedup")}, writer]
    elif unit == "tokenizer":
        cfg["steps"] = [reader, writer]
        cfg["tokenizer"] = dict(web.get("tokenizer") or {})
        if args.vocab_size:
            cfg["tokenizer"]["vocab_size"] = args.vocab_size
        cfg["shards"] = dict(web.get("shards") or {})
    elif unit == "chain":
        steps = copy.deepcopy(web["steps"])
        for s in steps:
            if "warc_reader" in s:
                s["warc_reader"]["paths"] = [str(size_dir / "warc" / "*.warc.gz")]
        cfg["steps"] = steps
    return cfg


def datatrove_spec(unit: str, size_dir: Path, out: Path, args) -> dict:
    from corpus.filters.language import default_model_path

    web = web_config()
    lf = web_step(web, "language_filter")
    tok = dict(web.get("tokenizer") or {})
    return {
        "unit": unit, "output": str(out), "tasks": args.tasks, "workers": args.workers,
        "input_dir": str(size_dir / ("warc" if unit == "chain" else "parts" if args.layout == "parts" else "")),
        "input_glob": "*.warc.gz" if unit == "chain" else "*.jsonl.gz" if args.layout == "parts" else "docs.jsonl.gz",
        "languages": lf.get("languages") or ["en"], "language_threshold": lf.get("min_score", 0.65),
        "lid_model": default_model_path(), "word_tokenizer": args.dt_word_tokenizer,
        "extract_timeout": web_step(web, "trafilatura").get("timeout", 10),
        "vocab_size": args.vocab_size or tok.get("vocab_size", 8000),
    }


def ours_steps(out: Path) -> tuple[dict, dict]:
    """Seconds and documents in per YAML step (summary.json), and the stages' own figures."""
    path = out / "summary.json"
    if not path.exists():
        return {}, {}
    s = json.loads(path.read_text())
    steps = {f"{st['index'] + 1:02d}-{st['step']}": {"seconds": st["seconds"], "docs_in": st["documents_in"],
                                                     "docs_out": st["documents_out"]} for st in s["steps"]}
    stages = {}
    for name, res in (s.get("stages") or {}).items():
        if isinstance(res, dict):
            stages[name] = {k: v for k, v in res.items() if isinstance(v, (int, float))}
            if isinstance(res.get("seconds"), (int, float)):  # a stage's own wall seconds
                steps[f"stage-{name}"] = {"seconds": res["seconds"], "docs_in": res.get("documents"), "docs_out": None}
    stages["steps_wall_seconds"] = s.get("steps_wall_seconds")
    stages["wall_seconds"] = s.get("wall_seconds")
    return steps, stages


def datatrove_steps(out: Path) -> tuple[dict, dict]:
    steps = {}
    for stats in sorted((out / "logs").glob("*/stats.json")):
        previous_out = None  # documents flow from step to step within a job
        for i, entry in enumerate(json.loads(stats.read_text())):
            ts = entry.get("time_stats") or {}
            seconds = ts.get("total", 0.0) if isinstance(ts, dict) else float(ts or 0)
            counts = entry.get("stats") or {}

            def num(k):
                v = counts.get(k)
                return (v.get("total") if isinstance(v, dict) else v) if v is not None else None

            name = re.sub(r"\s+", " ", re.sub(r"[^\x20-\x7e]", "", entry.get("name", "?"))).strip(" -")
            docs_in = num("total") or num("documents") or previous_out
            previous_out = num("forwarded") or num("total") or num("documents") or previous_out
            timed = ts.get("n") if isinstance(ts, dict) else None
            if timed and docs_in and timed < docs_in:  # one timer per task around its whole loop
                name += " [timed per task: the steps before it included]"
            steps[f"{stats.parent.name}/{i + 1:02d}-{name}"] = {"seconds": seconds, "docs_in": docs_in,
                                                                "docs_out": previous_out}
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
    for name, seconds in timings.items():  # work outside an executor (training the BPE)
        if not (out / "logs" / name).exists():
            steps[name] = {"seconds": seconds, "docs_in": None, "docs_out": None}
    return steps, timings


def tokens_of(tool: str, out: Path) -> int | None:
    if tool == "ours":
        mf = out / "shards" / "manifest.json"
        if mf.exists():
            m = json.loads(mf.read_text())
            return m.get("tokens") or sum(int(s.get("tokens", 0)) for s in m.get("shards", []) if isinstance(s, dict)) or None
        return None
    files = list((out / "tokens").rglob("*.ds")) if (out / "tokens").exists() else []
    return sum(f.stat().st_size for f in files) // 2 if files else None  # uint16 tokens (vocabulary < 65,536)


def run_one(unit: str, tool: str, n: int, manifest: dict, folder: Path, args, env: dict) -> dict:
    import yaml

    size_dir = DATA / "sizes" / str(n)
    out = folder / "out"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if tool == "ours":
        cfg_path = folder / "pipeline.yaml"
        cfg_path.write_text(yaml.safe_dump(ours_yaml(unit, size_dir, out, args), sort_keys=False, allow_unicode=True))
        cmd = [str(Path(sys.executable).parent / "corpus"), "run", str(cfg_path)]
    else:
        cfg_path = folder / "spec.json"
        cfg_path.write_text(json.dumps(datatrove_spec(unit, size_dir, out, args), indent=1))
        cmd = [sys.executable, "-m", "bench.scale_datatrove", str(cfg_path)]
    m = measure(cmd, folder, env, args.interval, args.timeout)
    used, apparent = disk_usage(out) if out.exists() else (0, 0)
    steps, extra = ours_steps(out) if tool == "ours" else datatrove_steps(out)
    mb = (manifest["html_bytes"] if unit == "chain" else manifest["text_bytes"]) / 1e6
    rec = {"unit": unit, "tool": tool, "size": n, "docs": manifest["docs"], "mb": mb, **m,
           "disk_mb": used / 1e6, "disk_apparent_mb": apparent / 1e6, "docs_out": count_docs(out / "docs"),
           "tokens": tokens_of(tool, out) if unit == "tokenizer" else None, "steps": steps, "extra": extra,
           "folder": str(folder.relative_to(ROOT))}
    if m.get("rc") != 0 or m.get("timed_out"):
        tail = (folder / "log.txt").read_bytes()[-3000:].decode("utf-8", "replace")
        log(f"run: {unit} {tool} {n}: FAILED (rc {m.get('rc')}, timed out {m.get('timed_out')}); log tail:\n{tail}")
        rec["failed"] = True
    for name in ("summary.json", "timings.json", "pipeline.yaml"):
        if (out / name).exists():
            shutil.copy(out / name, folder / f"out-{name}")
    for stats in sorted((out / "logs").glob("*/stats.json")) if (out / "logs").exists() else []:
        shutil.copy(stats, folder / f"out-stats-{stats.parent.name}.json")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return rec


def median_record(recs: list[dict]) -> dict:
    if len(recs) == 1:
        return recs[0]
    out = dict(recs[0])
    for k, v in recs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and all(isinstance(r.get(k), (int, float)) for r in recs):
            out[k] = statistics.median(r[k] for r in recs)
    out["repeats"] = [{k: r.get(k) for k in ("wall_s", "cpu_s", "maxrss_mb", "peak_pss_mb", "peak_worker_uss_mb",
                                                          "peak_worker_pss_mb", "peak_tree_mb",
                                                          "peak_tree_pss_mb")} for r in recs]
    return out


def run(args) -> None:
    sizes = parse_sizes(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else SIZES)
    units = args.units.split(",")
    tools = args.tools.split(",")
    for u in units:
        if u not in UNITS:
            sys.exit(f"unknown unit {u!r}; units: {', '.join(UNITS)}")
    manifests = build(sizes, args.parts, args.jobs)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = DATA / "runs" / stamp
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    results = {"meta": meta(args, sizes, units, tools), "corpus": {str(n): {k: v for k, v in manifests[n].items() if k != "files"}
                                                                  for n in sizes}, "runs": []}
    path = DATA / f"results-{stamp}.json"
    for unit in units:
        for n in sorted(sizes):
            for tool in tools:
                recs = []
                for r in range(args.repeat):
                    folder = base / unit / str(n) / (tool if args.repeat == 1 else f"{tool}-r{r + 1}")
                    log(f"run: {unit} {tool} {n:,} documents{f' (repeat {r + 1})' if args.repeat > 1 else ''}")
                    rec = run_one(unit, tool, n, manifests[n], folder, args, env)
                    log(f"run: {unit} {tool} {n:,}: wall {rec.get('wall_s', 0):.1f}s cpu {rec.get('cpu_s', 0):.1f}s "
                        f"peak/proc {rec.get('maxrss_mb', 0):.0f} MB (PSS {rec.get('peak_pss_mb', 0):.0f} MB, "
                        f"{rec.get('peak_pss_process')}) tree {rec['peak_tree_mb']:.0f} MB "
                        f"(PSS {rec.get('peak_tree_pss_mb', 0):.0f} MB)")
                    recs.append(rec)
                results["runs"].append(median_record(recs))
                results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
                path.write_text(json.dumps(results, indent=1))
    results["meta"]["load_after"] = os.getloadavg()
    path.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    log(f"run: results in {path.relative_to(ROOT)}")


def meta(args, sizes, units, tools) -> dict:
    from importlib.metadata import version

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "sizes": list(sizes), "units": units, "tools": tools,
            "tasks": args.tasks, "workers": args.workers, "repeat": args.repeat, "layout": args.layout,
            "interval": args.interval, "cores": os.cpu_count(), "load_before": os.getloadavg(), "commit": commit,
            "dirty_tree": dirty, "datatrove": version("datatrove"), "python": sys.version.split()[0],
            "dt_word_tokenizer": args.dt_word_tokenizer}


# ===================================================================== cost model

def cost(results: dict, per_gb: float, dump_pages: float, dump_html_kb: float, cores: int) -> str:
    """The README's cost model, from measured runs only: ``chain`` (web.yaml's steps on WARC
    input) and ``tokenizer`` (the tokenizer and shards stages), ours, at the largest size run.

    - CPU: the CPU time of the whole run (process tree) shared out between the steps in proportion
      to their seconds (summed over tasks), over the pages of the run, scaled to the pages in
      ``per_gb`` GB of this corpus's ``.warc.gz``.
      Tokenizer and shards: CPU seconds per document of the tokenizer unit, times the documents
      the chain keeps.
    - Memory: peak USS of a worker (what each more worker adds) and the peak PSS of the whole tree
      at the run's workers (models loaded once and shared count once); for W workers, about
      tree + (W - workers) x USS.
    - Disk: the run folder when the run ends (curated documents, dedup's files, logs), scaled.
    - A Common Crawl dump: ``dump_pages`` pages of ``dump_html_kb`` KB of HTML on average (both
      assumptions, not measured here); extraction scales with HTML bytes, every later step with
      the pages that reach it (this corpus's pass rates, which web pages will not match)."""
    runs = {(r["unit"], r["tool"], r["size"]): r for r in results["runs"] if ok(r)}
    chains = sorted(n for (u, t, n) in runs if u == "chain" and t == "ours")
    if not chains:
        return "no successful ours chain run in these results"
    n = chains[-1]
    ch = runs[("chain", "ours", n)]
    manifest = json.loads((DATA / "sizes" / str(n) / "manifest.json").read_text())
    warc = sum(f["bytes"] for name, f in manifest["files"].items() if name.startswith("warc/"))
    pages = ch["docs"]
    scale = per_gb * 1e9 / warc  # runs of this size in per_gb GB of WARC
    html_kb = manifest["html_bytes"] / pages / 1e3
    out = [f"Cost model from bench/scale.py run {results['meta']['started']} (commit {str(results['meta']['commit'])[:10]}): "
           f"web.yaml's chain on {pages:,} pages ({warc / 1e6:,.0f} MB of .warc.gz, {html_kb:.1f} KB of HTML a page), "
           f"{results['meta']['workers']} workers. {per_gb:g} GB of such WARC = {pages * scale / 1e6:,.2f} M pages.\n",
           f"| step | pages in (share) | CPU ms a page in | CPU-hours per {per_gb:g} GB WARC |", "|---|---|---|---|"]
    # a step's seconds are its tasks' time in it (a sandboxed extraction waits on its child), so the
    # run's CPU time (whole tree, start-up, runner, dedup's later stages and the report included)
    # is shared out in proportion to them
    share = ch["cpu_s"] / sum(st["seconds"] for st in ch["steps"].values())
    extract_cpu = 0.0  # CPU seconds of the run's extraction step, which scales with HTML bytes
    for name, st in ch["steps"].items():
        docs_in = st.get("docs_in") or pages
        cpu = st["seconds"] * share
        if "extract" in name or "trafilatura" in name:
            extract_cpu += cpu
        out.append(f"| {name} | {docs_in / pages:.0%} | {cpu / docs_in * 1e3:.2f} | {cpu * scale / 3600:,.1f} |")
    tok = max((r for (u, t, _), r in runs.items() if u == "tokenizer" and t == "ours"), key=lambda r: r["size"], default=None)
    tok_h = tok["cpu_s"] / tok["docs"] * ch["docs_out"] * scale / 3600 if tok else 0.0
    if tok:
        out.append(f"| tokenizer + shards stages ({ch['docs_out'] / pages:.0%} of pages kept; unit run at "
                   f"{tok['size']:,} documents) | - | {tok['cpu_s'] / tok['docs'] * 1e3:.2f} a document | {tok_h:,.1f} |")
    total_h = ch["cpu_s"] * scale / 3600 + tok_h
    workers = results["meta"]["workers"]
    uss, tree = ch.get("peak_worker_uss_mb"), ch.get("peak_tree_pss_mb")
    out.append(f"| **total** | | | **{total_h:,.1f}** |\n")
    out.append(f"- Memory: {fmt(uss, 0)} MB per worker (peak USS) and {fmt(tree, 0)} MB for the whole run at {workers} workers "
               f"(peak PSS of the tree; peak RSS of one process {ch['maxrss_mb']:,.0f} MB, shared pages counted in full); "
               + (f"{cores} workers: about {tree + (cores - workers) * uss:,.0f} MB." if uss and tree else
                  "(a run before PSS and USS were sampled)"))
    out.append(f"- Disk: {ch['disk_mb'] * scale / 1e3:,.1f} GB of run folder per {per_gb:g} GB of WARC "
               f"({ch['disk_mb'] / pages * 1e3:.1f} KB a page; the curated documents are {ch['docs_out'] / pages:.0%} of pages).")
    later = (ch["cpu_s"] - extract_cpu) / pages  # CPU seconds a page of every other step
    ext_s_per_kb = extract_cpu / (manifest["html_bytes"] / 1e3)
    dump_cpu = dump_pages * (ext_s_per_kb * dump_html_kb + later) + (tok_h * 3600 / (pages * scale)) * dump_pages
    out.append(f"- A Common Crawl dump of {dump_pages / 1e9:g} billion pages of {dump_html_kb:g} KB of HTML (assumed): "
               f"{dump_cpu / 3600:,.0f} CPU-hours ({ext_s_per_kb * dump_html_kb * dump_pages / 3600:,.0f} of them extraction), "
               f"{dump_cpu / 3600 / cores:,.0f} hours on {cores} cores ({dump_cpu / 3600 / cores / 24:,.1f} days), "
               f"{ch['disk_mb'] / pages * dump_pages / 1e6:,.1f} TB of run folder at this corpus's pass rates.")
    return "\n".join(out)


# ===================================================================== report

def fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return f"{x:,}"


def markdown(results: dict) -> str:
    out = []
    m = results["meta"]
    out.append(f"tasks {m['tasks']}, workers {m['workers']}, {m['cores']} cores, repeat {m['repeat']} (medians), "
               f"layout {m['layout']}, datatrove {m['datatrove']}, commit {str(m['commit'])[:10]}"
               f"{' (+ uncommitted changes)' if m.get('dirty_tree') else ''}; load average before "
               f"{', '.join(f'{x:.2f}' for x in m['load_before'])}")
    out.append("CPU: user + system of the whole process tree; per core = over CPU seconds; peak RSS per process: the "
               "largest of any process of the tree (exact); peak tree: largest sampled sum of RSS (pages shared "
               "after fork count in each process); PSS: proportional set size, sampled (shared pages divided among "
               "the processes sharing them); USS: unique set size, sampled (pages no other process shares); a worker: a "
               "process forked from one of the same command line (pool workers, not the forkserver or the runner)")
    for unit in m["units"]:
        rs = [r for r in results["runs"] if r["unit"] == unit]
        if rs:
            out += unit_tables(unit, rs)
    return "\n".join(out)


def ok(r: dict | None) -> bool:
    return bool(r and r.get("cpu_s") and not r.get("failed"))


def unit_tables(unit: str, rs: list[dict]) -> list[str]:
    out = [f"\n### {unit}\n",
           f"| size | docs | {'HTML MB' if unit == 'chain' else 'text MB'} | tool | wall s | CPU s | docs/s per core "
           "| MB/s per core | peak RSS per process MB | peak PSS per process MB | peak USS per worker MB "
           "| peak PSS per worker MB | peak tree RSS MB | peak tree PSS MB | disk MB | docs out | load 1m |",
           "|" + "---|" * 17]
    for r in sorted(rs, key=lambda r: (r["size"], r["tool"] != "ours")):
        cpu = r.get("cpu_s") if ok(r) else None
        bad = " (failed: see its log.txt)" if r.get("failed") else ""
        tokens = "" if r.get("tokens") is None else f" ({r['tokens']:,} tokens)"
        out.append(f"| {r['size']:,} | {r['docs']:,} | {r['mb']:.1f} | {r['tool']}{bad} | {fmt(r.get('wall_s'))} | "
                   f"{fmt(cpu)} | {fmt(r['docs'] / cpu if cpu else None, 0)} | {fmt(r['mb'] / cpu if cpu else None, 2)} | "
                   f"{fmt(r.get('maxrss_mb'), 0)} | {fmt(r.get('peak_pss_mb'), 0)} | {fmt(r.get('peak_worker_uss_mb'), 0)} | "
                   f"{fmt(r.get('peak_worker_pss_mb'), 0)} | "
                   f"{fmt(r.get('peak_tree_mb'), 0)} | "
                   f"{fmt(r.get('peak_tree_pss_mb'), 0)} | {fmt(r.get('disk_mb'))} | "
                   f"{fmt(r.get('docs_out'))}{tokens} | {r['load_before'][0]:.2f} |")
    by = {(r["tool"], r["size"]): r for r in rs}
    sizes = sorted({r["size"] for r in rs})
    lines = []
    for n in sizes:
        a, b = by.get(("ours", n)), by.get(("datatrove", n))
        if ok(a) and ok(b):
            lines.append(f"- {n:,}: wall {a['wall_s'] / b['wall_s']:.2f}x, CPU {a['cpu_s'] / b['cpu_s']:.2f}x, "
                         f"peak per process {a['maxrss_mb'] / b['maxrss_mb']:.2f}x (PSS {ratio(a, b, 'peak_pss_mb')}, "
                         f"worker USS {ratio(a, b, 'peak_worker_uss_mb')}, worker PSS {ratio(a, b, 'peak_worker_pss_mb')}), "
                         f"peak tree {a['peak_tree_mb'] / max(b['peak_tree_mb'], 1e-9):.2f}x "
                         f"(PSS {ratio(a, b, 'peak_tree_pss_mb')}), "
                         f"disk {a['disk_mb'] / max(b['disk_mb'], 1e-9):.2f}x")
    if lines:
        out += ["\nours / datatrove (below 1: ours takes less)\n", *lines]
    lines = []
    for tool in ("ours", "datatrove"):
        runs = [by[(tool, n)] for n in sizes if ok(by.get((tool, n)))]
        if len(runs) < 2:
            continue
        a, b = runs[0], runs[-1]
        line = (f"- {tool}, {a['size']:,} to {b['size']:,}: CPU s per document "
                f"{growth(a['cpu_s'] / a['docs'], b['cpu_s'] / b['docs'])}, wall s per document "
                f"{growth(a['wall_s'] / a['docs'], b['wall_s'] / b['docs'])}, peak RSS per process "
                f"{growth(a['maxrss_mb'], b['maxrss_mb'])} (PSS {growth(a.get('peak_pss_mb'), b.get('peak_pss_mb'))}, "
                f"worker USS {growth(a.get('peak_worker_uss_mb'), b.get('peak_worker_uss_mb'))}, "
                f"worker PSS {growth(a.get('peak_worker_pss_mb'), b.get('peak_worker_pss_mb'))}, "
                f"at {b.get('peak_pss_process') or '-'}), peak tree {growth(a['peak_tree_mb'], b['peak_tree_mb'])} "
                f"(PSS {growth(a.get('peak_tree_pss_mb'), b.get('peak_tree_pss_mb'))})")
        if len(runs) >= 3:  # the cost of one more document, start-up left out
            marginal = [(y["cpu_s"] - x["cpu_s"]) / (y["docs"] - x["docs"]) * 1e3 for x, y in zip(runs, runs[1:])]
            line += ("; marginal CPU ms per document " + ", ".join(
                f"{x['size']:,}-{y['size']:,} {v:.2f}" for x, y, v in zip(runs, runs[1:], marginal))
                     + f" ({growth(marginal[0], marginal[-1])})")
        lines.append(line)
    if lines:
        out += ["\ngrowth, smallest to largest size (whole process tree, start-up included)\n", *lines]
    return out + step_table(rs, sizes)


def growth(a: float | None, b: float | None) -> str:
    return f"{(b / a - 1) * 100:+.0f}%" if a and b is not None else "-"


def ratio(a: dict, b: dict, key: str) -> str:
    return f"{a[key] / b[key]:.2f}x" if a.get(key) and b.get(key) else "-"


def step_table(rs: list[dict], sizes: list[int]) -> list[str]:
    """Microseconds per document of every step (seconds summed over tasks, over the documents the
    step received where known, else the run's documents), and their growth."""
    out = []
    for tool in ("ours", "datatrove"):
        by = {r["size"]: r for r in rs if r["tool"] == tool and r.get("steps")}
        if not by:
            continue
        names = list(dict.fromkeys(k for n in sizes if n in by for k in by[n]["steps"]))
        out.append(f"\n{tool}: µs per document per step (seconds summed over tasks / documents in)\n")
        out.append("| step | " + " | ".join(f"{n:,}" for n in sizes) + " | growth |")
        out.append("|---|" + "---|" * (len(sizes) + 1))
        for name in names:
            vals = []
            for n in sizes:
                st = by.get(n, {}).get("steps", {}).get(name)
                if not st:
                    vals.append(None)
                    continue
                docs = st.get("docs_in") or by[n]["docs"]
                vals.append(st["seconds"] / docs * 1e6 if docs else None)
            g = growth(vals[0], vals[-1]) if len(vals) > 1 and vals[0] and vals[-1] is not None else "-"
            out.append(f"| {name} | " + " | ".join(fmt(v, 1) for v in vals) + f" | {g} |")
    return out


def parse_sizes(s: str) -> tuple[int, ...]:
    return tuple(int(float(x.replace("k", "e3").replace("M", "e6"))) for x in s.split(","))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        return measure_child(sys.argv[2], sys.argv[sys.argv.index("--") + 1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="the corpus at every size (cached)")
    r = sub.add_parser("run", help="measure the units at every size, ours and datatrove's")
    for p in (b, r):
        p.add_argument("--sizes", help=f"documents per size, comma-separated (default {','.join(map(str, SIZES))})")
        p.add_argument("--quick", action="store_true", help=f"tiny sizes for a smoke run ({','.join(map(str, QUICK_SIZES))})")
        p.add_argument("--parts", type=int, default=8, help="files per size (JSONL parts and WARC files)")
        p.add_argument("--jobs", type=int, default=2, help="extraction processes while building")
    r.add_argument("--units", default=",".join(UNITS), help=f"comma-separated, of {','.join(UNITS)}")
    r.add_argument("--tools", default=",".join(TOOLS))
    r.add_argument("--tasks", type=int, default=2)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--repeat", type=int, default=1, help="runs of each measurement; medians are kept")
    r.add_argument("--layout", choices=("parts", "single"), default="parts", help="the JSONL input: parts/ or docs.jsonl.gz")
    r.add_argument("--interval", type=float, default=0.1, help="seconds between memory samples")
    r.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before a run is killed")
    r.add_argument("--vocab-size", type=int, default=None, help="tokenizer unit (default: web.yaml's)")
    r.add_argument("--dt-word-tokenizer", choices=("spacy", "whitespace"), default="spacy",
                   help="datatrove MinHash's word tokenizer: its default (spaCy, English) or a whitespace split")
    r.add_argument("--keep", action="store_true", help="keep the runs' output folders")
    rep = sub.add_parser("report", help="the markdown tables of a results file")
    rep.add_argument("results")
    c = sub.add_parser("cost", help="the README's cost model (CPU-hours, memory, disk per WARC volume) from a results file")
    c.add_argument("results", nargs="+", help="results files; the chain and tokenizer units may come from different runs")
    c.add_argument("--per-gb", type=float, default=100, help="GB of .warc.gz the figures are given for")
    c.add_argument("--dump-pages", type=float, default=2.5e9, help="pages of the Common Crawl dump (an assumption)")
    c.add_argument("--dump-html-kb", type=float, default=60, help="mean KB of HTML of its pages (an assumption)")
    c.add_argument("--cores", type=int, default=64)
    args = ap.parse_args()
    if args.cmd == "build":
        sizes = parse_sizes(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else SIZES)
        for n, mf in sorted(build(sizes, args.parts, args.jobs).items()):
            print(f"{n:>9,} documents  {mf['text_bytes'] / 1e6:>8.1f} MB text  {mf['html_bytes'] / 1e6:>8.1f} MB HTML  "
                  f"{len(mf['sources'])} sources  data/scale/sizes/{n}")
    elif args.cmd == "run":
        run(args)
    elif args.cmd == "cost":
        files = [json.loads(Path(f).read_text()) for f in args.results]
        chains = [f for f in files if any(r["unit"] == "chain" for r in f["runs"])] or files
        merged = {"meta": chains[-1]["meta"], "runs": [r for f in files for r in f["runs"]]}
        print(cost(merged, args.per_gb, args.dump_pages, args.dump_html_kb, args.cores))
    else:
        print(markdown(json.loads(Path(args.results).read_text())))


if __name__ == "__main__":
    main()
