"""Liveness of the processes that serve no HTTP: workers, the relay, the scheduler.

While such a process runs, a thread of it renews ``<namespace>:health:<role>:<host>``
in Redis with a time to live of a few intervals. An exec probe in the same container
(``python -m workflow_service health --role worker``, ``python -m api_service health``)
has the same host name and answers 0 while that key exists, 1 once it has expired: the
process stopped renewing it (it died, or hangs without its threads running). When Redis
itself cannot be reached the probe answers 0 and says so: the process could not renew
its key either, and restarting it would not bring Redis back.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import threading
import time

import redis
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

ROLES = ("worker", "relay", "scheduler")
DEFAULT_INTERVAL_S = 10.0


def heartbeat_key(namespace: str, role: str, host: str | None = None) -> str:
    return f"{namespace}:health:{role}:{host or socket.gethostname()}"


class Heartbeat:
    """Renews this process's key every ``interval_s`` in a daemon thread."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        role: str,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        host: str | None = None,
    ) -> None:
        self.client = client
        self.key = heartbeat_key(namespace, role, host)
        self.interval_s = interval_s
        self.ttl_ms = max(1, int(interval_s * 3 * 1000))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self.client.set(self.key, str(time.time()), px=self.ttl_ms)

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._loop, name="health-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s)
        with contextlib.suppress(redis.RedisError):
            self.client.delete(self.key)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except redis.RedisError as exc:
                log.warning("health heartbeat not renewed: %s", exc)
            self._stop.wait(self.interval_s)


class HeartbeatMiddleware(Middleware):
    """Starts a worker process's heartbeat when it boots and stops it at shutdown."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.heartbeat: Heartbeat | None = None

    def after_worker_boot(self, broker, worker):
        self.heartbeat = Heartbeat(
            broker.client, broker.namespace, "worker", interval_s=self.interval_s
        ).start()

    def before_worker_shutdown(self, broker, worker):
        if self.heartbeat is not None:
            self.heartbeat.stop()


def check(client: redis.Redis, namespace: str, role: str, host: str | None = None) -> str | None:
    """None when healthy, else what is wrong (one line)."""
    key = heartbeat_key(namespace, role, host)
    try:
        if client.exists(key):
            return None
    except redis.RedisError as exc:
        log.warning("health: Redis unreachable (%s); not judging the %s", exc, role)
        return None
    return f"no {role} heartbeat at {key}: the process is not running or not renewing it"


def main(prog: str, redis_url: str, namespace: str, argv: list[str], default_role: str) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="exit 0 while this host's process beats"
    )
    parser.add_argument("--role", choices=ROLES, default=default_role)
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3)
    problem = check(client, namespace, args.role)
    if problem:
        print(f"{prog}: {problem}")
        return 1
    print(f"{prog}: {args.role} ok")
    return 0
