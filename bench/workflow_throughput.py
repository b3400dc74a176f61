"""Workflow executions per second against a bare Dramatiq no-op actor, same run.

    .venv/bin/python bench/workflow_throughput.py [--database sqlite|postgres] [--count 2000]

One worker process with 8 threads (``dramatiq workflow_service.worker --processes 1
--threads 8 --queues governance.policy``) and one active workflow with a single in-app
``notify`` step. The clock runs from publishing the first of ``count`` trigger events
(``shared.events.event_message`` + ``broker.enqueue``, as the api does) to the last
execution ``completed`` in the database: each execution is two messages (dispatch, then
run) and about a dozen SQL statements.

Baseline: a ``noop`` actor on Dramatiq's stock RedisBroker with its default middleware,
the same Redis and the same worker settings (1 process, 8 threads), timed from its first
enqueue until its queue is empty. Target: workflow executions/s >= 0.5 x the no-op's
messages/s.

Variants of the workflow measurement (e.g. with and without a middleware) are entries
in :data:`VARIANTS`: a label and the environment the system's processes get.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _cpu import process_tree_cpu_s
from _harness import (
    REDIS_URL,
    Probe,
    add_notify_workflow,
    drop_created_databases,
    poll,
    start_system,
)

from shared.broker import create_broker
from shared.events import Event, event_message
from shared.settings import CommonSettings

THREADS = 8
TENANT = "bench"
NO_JOB_STATUS = "workflow: 1-step notify, no job status"

#: (label, extra environment of every process of the system under test).
VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("workflow: 1-step notify", {}),
    # The same with the job-status middleware off in every process (and the publisher):
    # what recording each job's life costs.
    (NO_JOB_STATUS, {"JOB_STATUS": "off"}),
]


@dataclass
class Result:
    label: str
    count: int
    seconds: float
    #: CPU seconds the worker process used meanwhile (None: not measured).
    worker_cpu_s: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def measure_workflow(
    tmp: Path, database: str, label: str, env: dict[str, str], count: int
) -> Result:
    system = start_system(tmp, database, api=False, env=env)
    try:
        add_notify_workflow(system, TENANT)
        worker = system.start_worker(queues=["governance.policy"], threads=THREADS)
        broker = create_broker(
            CommonSettings(
                redis_url=REDIS_URL,
                namespace=system.namespace,
                job_status=env.get("JOB_STATUS") != "off",
            )
        )

        def publish(n: int) -> None:
            for i in range(n):
                broker.enqueue(
                    event_message(
                        Event(
                            event_type="policy.created",
                            entity_type="policy",
                            entity_id=f"p-{i}",
                            tenant_id=TENANT,
                            data={"title": f"Policy {i}", "owner": "bob", "status": "draft"},
                        )
                    )
                )

        def completed() -> int:
            # The admin API's own listing would page; count in the database directly.
            return completed_count(system.workflow_database_url)

        warmup = 50
        publish(warmup)
        poll(lambda: completed() >= warmup, timeout=120, message="warm-up executions")
        cpu_before = process_tree_cpu_s(worker.pid)
        started = time.perf_counter()
        publish(count)
        poll(
            lambda: completed() >= warmup + count,
            timeout=900,
            interval=0.01,
            message=f"{count} executions completed",
        )
        elapsed = time.perf_counter() - started
        worker_cpu = process_tree_cpu_s(worker.pid) - cpu_before
        broker.close()
        return Result(label, count, elapsed, worker_cpu)
    finally:
        system.stop()


_dbs: dict = {}


def completed_count(url: str) -> int:
    from shared.db import open_database

    db = _dbs.get(url)
    if db is None:
        db = _dbs[url] = open_database(url)
    cursor = db.execute_sql("SELECT count(*) FROM execution WHERE status = 'completed'")
    return cursor.fetchone()[0]


def measure_bare(tmp: Path, count: int) -> Result:
    probe = Probe(tmp, "stock", THREADS)
    try:
        rate = probe.drain_rate(count)
    finally:
        probe.stop()
    return Result("bare Dramatiq no-op actor (stock broker)", count, count / rate)


def median_result(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.rate)[len(results) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the variants this many times, in alternating order, and report the "
        "median of each (a busy machine's noise is larger than the differences)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wf-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            bare = measure_bare(tmp, args.count * 2)
            runs: dict[str, list[Result]] = {label: [] for label, _ in VARIANTS}
            for round_ in range(args.rounds):
                order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
                for label, env in order:
                    runs[label].append(measure_workflow(tmp, args.database, label, env, args.count))
            results = [median_result(runs[label]) for label, _ in VARIANTS]
        finally:
            drop_created_databases()
    print(f"\nworkflow throughput ({args.database}, 1 worker process x {THREADS} threads)")
    print(f"  (load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"  {bare.label:45} {bare.rate:9.1f} messages/s  ({bare.count} in {bare.seconds:.2f} s)")
    for result in results:
        ratio = result.rate / bare.rate
        print(
            f"  {result.label:45} {result.rate:9.1f} executions/s ({result.count} in "
            f"{result.seconds:.2f} s)  ratio {ratio:.2f}  (target >= 0.50: "
            f"{'met' if ratio >= 0.5 else 'NOT met'})"
        )
        if result.worker_cpu_s is not None:
            per_execution = 1000 * result.worker_cpu_s / result.count
            print(f"  {'':45} worker CPU {per_execution:.2f} ms per execution")
    by_label = {r.label: r for r in results}
    without = by_label.get(NO_JOB_STATUS)
    if without is not None:
        cost = 1 - results[0].rate / without.rate
        rounds = f"median of {args.rounds} rounds" if args.rounds > 1 else "1 round"
        print(
            f"  job status costs {cost:.1%} of workflow throughput ({rounds}; target <= 15%: "
            f"{'met' if cost <= 0.15 else 'NOT met'})"
        )
        if args.rounds > 1:
            pairs = zip(runs[VARIANTS[0][0]], runs[NO_JOB_STATUS], strict=True)
            costs = ", ".join(f"{1 - a.rate / b.rate:.1%}" for a, b in pairs)
            print(f"  per round: {costs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
