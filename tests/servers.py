"""Web servers on loopback for the crawler tests: a static site with a robots.txt, and a fault
server. Each logs (time, path) of every request it receives."""

from __future__ import annotations

import functools
import http.server
import socket
import struct
import threading
import time


class Logged(http.server.SimpleHTTPRequestHandler):
    robots = b""
    log: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.log.append((time.time(), self.path))
        if self.path == "/robots.txt":
            return self.reply(200, self.robots, "text/plain")
        return super().do_GET()

    def reply(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


FAULT_INDEX = b"""<html><head><title>faults</title></head><body><h1>Fault pages</h1>
<a href="/flaky">flaky</a> <a href="/slow">slow</a> <a href="/reset">reset</a> <a href="/loop1">loop</a>
<a href="/big">big</a> <a href="/binary">binary</a> <a href="/gbk">gbk</a> <a href="/moved">moved</a></body></html>"""
GBK_TEXT = "北京是中华人民共和国的首都，也是全国的政治中心和文化中心。这座城市有三千多年的建城史。"


class Faults(Logged):
    counts: dict = {}

    def do_GET(self):
        self.log.append((time.time(), self.path))
        n = self.counts[self.path] = self.counts.get(self.path, 0) + 1
        if self.path == "/robots.txt":
            return self.reply(200, b"User-agent: *\nAllow: /\n", "text/plain")
        if self.path in ("/", "/index.html"):
            return self.reply(200, FAULT_INDEX)
        if self.path == "/sitemap.xml":
            host = f"http://{self.headers['Host']}"
            urls = "".join(f"<url><loc>{host}{p}</loc></url>" for p in ("/slow", "/gbk"))
            return self.reply(200, f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/'
                                   f'schemas/sitemap/0.9">{urls}</urlset>'.encode(), "application/xml")
        if self.path == "/flaky":  # two 500s, then the page
            if n <= 2:
                return self.reply(500, b"<html><body>try again</body></html>")
            return self.reply(200, b"<html><body><p>Flaky page finally served.</p></body></html>")
        if self.path == "/slow":
            time.sleep(1.5)
            return self.reply(200, b"<html><body><p>A slow page.</p></body></html>")
        if self.path == "/reset":  # close with a TCP reset, no response
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return None
        if self.path in ("/loop1", "/loop2"):
            return self.reply(302, b"", headers=[("Location", "/loop2" if self.path == "/loop1" else "/loop1")])
        if self.path == "/moved":
            return self.reply(301, b"", headers=[("Location", "/gbk")])
        if self.path == "/big":  # 50 MB
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(50_000_000))
            self.end_headers()
            chunk = b"<p>" + b"x" * 65_533
            try:
                for _ in range(50_000_000 // len(chunk)):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the crawler hung up, as it should
            return None
        if self.path == "/binary":
            return self.reply(200, bytes(range(256)) * 100, "application/octet-stream")
        if self.path == "/gbk":
            body = (f"<html><head><meta charset='gbk'><title>北京</title></head><body><article><p>{GBK_TEXT}</p>"
                    f"<p>{GBK_TEXT}</p></article></body></html>").encode("gbk")
            return self.reply(200, body, "text/html")
        return self.reply(404, b"<html><body>not found</body></html>")


def serve(handler_cls, directory: str | None = None, **attrs):
    """Start a threaded server on a free loopback port; returns (server, base URL, request log)."""
    cls = type("Handler", (handler_cls,), {"log": [], **attrs})
    handler = functools.partial(cls, directory=directory) if directory else cls
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", cls.log


class S3Server:
    """moto's S3 server (``moto_server``, pip ``moto[server]``) in its own process on a free
    loopback port, with s3fs as the client. Started within ``timeout`` seconds or an error;
    stopped by ``stop()`` (the fixtures' teardown)."""

    def __init__(self, timeout: float = 30.0):
        import shutil
        import subprocess
        import sys
        import urllib.request
        from pathlib import Path

        exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start on {self.endpoint}")
                time.sleep(0.2)

    def env(self, secret: str) -> dict[str, str]:
        """What a process needs to reach the server: the usual AWS variables."""
        return {"AWS_ACCESS_KEY_ID": "corpus-test", "AWS_SECRET_ACCESS_KEY": secret, "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def fs(self, secret: str):
        import s3fs

        return s3fs.S3FileSystem(key="corpus-test", secret=secret, endpoint_url=self.endpoint, use_listings_cache=False)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
