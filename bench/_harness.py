"""Shared plumbing of the workflow benchmarks: databases, the real system, baselines."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import ServiceProcess, poll  # noqa: E402
from tests.system import WORKER_READY, System  # noqa: E402

BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROBE_QUEUE = "bench.probe"


_created_databases: list[str] = []


def drop_created_databases() -> None:
    """Drop the PostgreSQL databases the benchmark created."""
    if not _created_databases:
        return
    import psycopg2

    conn = psycopg2.connect(POSTGRES_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in _created_databases:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
    _created_databases.clear()


def database_factory(kind: str, tmp: Path) -> Callable[[str], str]:
    """``make_database_url`` for the system: SQLite files, or fresh PostgreSQL databases."""

    def make(label: str) -> str:
        name = f"gw_bench_{label}_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            return f"sqlite:///{tmp / (name + '.db')}"
        import psycopg2

        conn = psycopg2.connect(POSTGRES_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        _created_databases.append(name)
        return f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"

    return make


def start_system(tmp: Path, database: str, *, api: bool, env: dict[str, str]) -> System:
    system = System(tmp, database_factory(database, tmp), REDIS_URL, env=env)
    system.start(api=api, workers=0)
    return system


class Probe:
    """A ``dramatiq bench.dramatiq_probe`` worker (stock or shared broker) and a sender."""

    def __init__(
        self,
        tmp: Path,
        kind: str,
        threads: int,
        *,
        processes: int = 1,
        env: dict[str, str] | None = None,
    ):
        self.namespace = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
        env = {
            "REDIS_URL": REDIS_URL,
            "REDIS_NAMESPACE": self.namespace,
            "BENCH_BROKER": kind,
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        argv = [
            str(BIN / "dramatiq"),
            "bench.dramatiq_probe",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ]
        self.process = ServiceProcess(f"probe-{kind}", argv, env, tmp).start()
        self.process.wait_log(WORKER_READY)
        # Send the way each side's producers do (the shared broker also publishes the
        # wake-up its consumers wait on).
        self.kind = kind
        if kind == "shared":
            from shared.broker import create_broker
            from shared.settings import CommonSettings

            self.sender = create_broker(
                CommonSettings(redis_url=REDIS_URL, namespace=self.namespace)
            )
        else:
            self.sender = RedisBroker(url=REDIS_URL, namespace=self.namespace)
        self.sender.declare_queue(PROBE_QUEUE)
        self.client = redis.Redis.from_url(REDIS_URL)

    def send(self, actor: str, *args) -> None:
        message = dramatiq.Message(
            queue_name=PROBE_QUEUE, actor_name=actor, args=args, kwargs={}, options={}
        )
        self.sender.enqueue(message)

    def drained(self) -> bool:
        return (
            self.client.hlen(f"{self.namespace}:{PROBE_QUEUE}.msgs") == 0
            and self.client.llen(f"{self.namespace}:{PROBE_QUEUE}") == 0
        )

    def warm_up(self, count: int = 50) -> None:
        for _ in range(count):
            self.send("noop")
        poll(self.drained, timeout=60, message="warm-up drained")

    def drain_rate(self, count: int, warm_up: bool = True) -> float:
        if warm_up:
            self.warm_up()
        started = time.perf_counter()
        for _ in range(count):
            self.send("noop")
        poll(self.drained, timeout=600, interval=0.005, message="probe queue drained")
        return count / (time.perf_counter() - started)

    def pickups(self, count: int, every_s: float) -> list[float]:
        key = f"{self.namespace}:bench:pickup"
        self.client.delete(key)
        for _ in range(count):
            self.send("pickup", time.time())
            time.sleep(every_s)
        poll(lambda: self.client.llen(key) >= count, timeout=60, message="pickups recorded")
        return [float(v) for v in self.client.lrange(key, 0, -1)]

    def stop(self) -> None:
        self.process.stop()
        keys = list(self.client.scan_iter(match=f"{self.namespace}*", count=1000))
        if keys:
            self.client.delete(*keys)
        self.sender.close()
        self.client.close()


def add_notify_workflow(system: System, tenant: str) -> None:
    """The benchmarks' workflow: on every policy created, one in-app notify step."""
    admin = system.workflow_client(roles=["admin"], tenant=tenant)
    admin.post(
        "/workflows",
        json={
            "name": "bench notify",
            "entity_type": "policy",
            "trigger": "on_create",
            "steps": [
                {
                    "kind": "notify",
                    "recipients": ["owner"],
                    "subject": "New policy {{ entity.title }}",
                }
            ],
            "status": "active",
        },
    ).raise_for_status()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):7.2f} ms  p90 {percentile(ms, 90):7.2f} ms  "
        f"p99 {percentile(ms, 99):7.2f} ms  mean {statistics.fmean(ms):7.2f} ms  (n={len(ms)})"
    )


def run_quietly(argv: list[str], env: dict[str, str]) -> None:
    subprocess.run(argv, env={**os.environ, **env}, cwd=ROOT, check=True, capture_output=True)
