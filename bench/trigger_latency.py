"""Latency from the api's write response to the workflow execution starting and completing.

    .venv/bin/python bench/trigger_latency.py [--database sqlite|postgres]

The real system: the api (gunicorn), one workflow worker group (``dramatiq
workflow_service.worker --processes 1 --threads 8 --queues governance.policy``) and
one active ``on_create`` workflow with a single in-app ``notify`` step. Each sample is a
``POST /policies``; its latency runs from the moment the client has the response to
the execution's ``started_at`` (claimed by a worker: two hops, dispatch then run, with
the dispatch's database work between) and to its ``finished_at``. Two loads: idle (one
write every 0.5 s) and 100 writes/s. Target for the start: p50 < 10 ms, p99 < 50 ms.

One hop, in the same run: the pickup latency (enqueue to the actor starting) of our
workers' broker (``shared.broker.create_broker``, consumers woken by a pub/sub ping) and
of a bare Dramatiq actor on Dramatiq's stock RedisBroker with default settings (its
consumer polls with a backoff that grows to the 1 s worker timeout).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path

from _harness import (
    Probe,
    add_notify_workflow,
    drop_created_databases,
    poll,
    start_system,
    summary_ms,
)

from shared.db import open_database

THREADS = 8
TENANT = "bench"


def write_policies(api, count: int, interval_s: float, senders: int) -> dict[str, float]:
    """POST ``count`` policies, one every ``interval_s``; policy id -> response time."""
    answered: dict[str, float] = {}
    lock = threading.Lock()
    start = time.perf_counter() + 0.05

    def write(i: int) -> None:
        delay = start + i * interval_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        response = api.post(
            "/policies", json={"title": f"Policy {i}", "policy_type": "security", "owner": "bob"}
        )
        at = time.time()
        response.raise_for_status()
        with lock:
            answered[response.json()["id"]] = at

    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(write, range(count)))
    return answered


def execution_times(url: str, policy_ids: set[str]) -> dict[str, tuple[float, float]]:
    db = open_database(url)
    rows = db.execute_sql(
        "SELECT entity_id, started_at, finished_at FROM execution WHERE status = 'completed'"
    ).fetchall()
    db.close()

    def epoch(value) -> float:
        if isinstance(value, str):
            from datetime import datetime

            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC).timestamp()

    return {
        entity: (epoch(started), epoch(finished))
        for entity, started, finished in rows
        if entity in policy_ids
    }


def measure_trigger(tmp: Path, database: str) -> None:
    system = start_system(tmp, database, api=True, env={})
    try:
        add_notify_workflow(system, TENANT)
        system.start_worker(queues=["governance.policy"], threads=THREADS)
        api = system.api_client(sub="alice", roles=["editor"], tenant=TENANT)
        write_policies(api, 20, 0.05, 1)  # warm up both services and the worker

        for label, count, interval, senders in (
            ("idle: 1 write / 0.5 s", 40, 0.5, 1),
            ("100 writes/s", 500, 0.01, 8),
        ):
            answered = write_policies(api, count, interval, senders)
            ids = set(answered)
            times = poll(
                lambda ids=ids: (
                    (found := execution_times(system.workflow_database_url, ids))
                    and len(found) == len(ids)
                    and found
                ),
                timeout=300,
                interval=0.2,
                message=f"{count} executions completed",
            )
            starts = [times[p][0] - answered[p] for p in ids]
            ends = [times[p][1] - answered[p] for p in ids]
            print(f"\n{label} ({count} writes, {database})")
            print(f"  write response -> execution started    {summary_ms(starts)}")
            print(f"  write response -> execution completed  {summary_ms(ends)}")
    finally:
        system.stop()


def measure_pickup(tmp: Path) -> None:
    print("\none hop at idle: enqueue -> actor started (1 worker process x 8 threads)")
    for kind, label in (
        ("shared", "our workers' broker (woken consumers)"),
        ("stock", "bare Dramatiq actor, default settings"),
    ):
        probe = Probe(tmp, kind, THREADS)
        try:
            probe.pickups(5, 0.2)  # warm up
            samples = probe.pickups(50, 0.2)
        finally:
            probe.stop()
        print(f"  {label:40} {summary_ms(samples)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            measure_trigger(tmp, args.database)
            measure_pickup(tmp)
        finally:
            drop_created_databases()
    print("\ntarget for the start: p50 < 10 ms, p99 < 50 ms")
    print(f"  (load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
