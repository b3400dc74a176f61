"""Workflow executions per second against a bare Dramatiq no-op actor, same run.

    .venv/bin/python bench/workflow_throughput.py [--database sqlite|postgres] [--count 2000]
        [--processes 1,2] [--rounds 1] [--no-counts]

Worker processes of 8 threads each (``dramatiq workflow_service.worker --processes 1
--threads 8 --queues governance.policy``, one group per process) and one active
workflow with a single in-app ``notify`` step. The clock runs from publishing the first
of ``count`` trigger events (``shared.events.event_message`` + ``broker.enqueue``, as the
api does) to the last execution ``completed`` in the database: each execution is two
messages (dispatch, then run).

Baseline: a ``noop`` actor on Dramatiq's stock RedisBroker with its default middleware,
the same Redis and the same worker settings (1 process, 8 threads), timed from its first
enqueue until its queue is empty, with as many worker processes as the workflow run.
Targets: with one process, executions/s >= 0.35 x the no-op's messages/s; two
processes >= 1.7 x one; worker CPU per execution <= 1.2 ms; job status <= 5 % of the
execution throughput.

Costs are counted, not estimated (``bench/_counting``): each process under test counts
its SQL statements (by kind, and the pool's connection checks) and its Redis round trips
and commands; the script prints them per execution (worker processes only) and per
no-op message. Counting adds a wrapper call per statement and per Redis call to the
worker's CPU time; ``--no-counts`` measures without it.

Variants of the workflow measurement (e.g. with and without a middleware) are entries
in :data:`VARIANTS`: a label and the environment the system's processes get.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _counts import Counts, counting_env, read_counts
from _cpu import _TICK
from _harness import (
    BIN,
    REDIS_URL,
    ROOT,
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
RATIO_TARGET = 0.35
SCALING_TARGET = 1.7
CPU_TARGET_MS = 1.2
JOB_STATUS_TARGET = 0.05

#: (label, extra environment of every process of the system under test).
VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("workflow: 1-step notify", {}),
    # The same with the job-status middleware off in every process (and the publisher):
    # what recording each job's life costs.
    (NO_JOB_STATUS, {"JOB_STATUS": "off"}),
]


def tree_cpu(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pids`` and their descendants, from ``/proc``."""
    user = system = 0.0
    pending = list(pids)
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(c) for c in children.read().split()]
        except OSError:
            continue  # gone meanwhile
        user += int(fields[11]) / _TICK
        system += int(fields[12]) / _TICK
    return user, system


@dataclass
class Result:
    label: str
    count: int
    seconds: float
    processes: int = 1
    #: (user, system) CPU seconds the worker processes used meanwhile.
    worker_cpu: tuple[float, float] | None = None
    #: What the worker processes sent to the database and Redis meanwhile.
    counts: Counts | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def worker_cpu_s(self) -> float | None:
        return sum(self.worker_cpu) if self.worker_cpu is not None else None


class _Counting:
    """Where the processes of one measurement count (nothing when counts are off)."""

    def __init__(self, tmp: Path, label: str, enabled: bool):
        self.directory = tmp / f"counts-{label}-{time.monotonic_ns()}" if enabled else None

    def env(self) -> dict[str, str]:
        return counting_env(self.directory, str(ROOT)) if self.directory else {}

    def read(self, pids: list[int], fresh_after: float | None = None) -> Counts | None:
        if self.directory is None:
            return None
        total = Counts()
        for pid in pids:
            total = total + read_counts(self.directory, tree=pid, fresh_after=fresh_after)
        return total


class Profiler:
    """``py-spy record`` of a process tree while the measured work runs (``--profile``).

    py-spy samples from outside the process (``pip install py-spy``; attaching needs
    ptrace rights: root, or ``kernel.yama.ptrace_scope=0``). Sampling pauses the
    process briefly, so throughput measured with a profiler on is a little lower.
    """

    def __init__(self, directory: Path | None, name: str):
        self.directory = directory
        self.name = name
        self.processes: list[subprocess.Popen] = []

    def start(self, pids: list[int]) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for n, pid in enumerate(pids):
            output = self.directory / f"{self.name}-{n + 1}.folded.txt"
            # --gil: only samples of threads holding the GIL, i.e. running Python code
            # (waits on sockets, locks and queues are left out): where the CPU goes.
            argv = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--subprocesses", "--gil"]
            argv += ["--nonblocking"]  # no pauses: samples land where the time goes
            argv += ["--rate", "250", "--format", "raw", "--output", str(output)]
            self.processes.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        time.sleep(1)  # attached

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        for process in self.processes:
            process.wait(60)


def measure_workflow(
    tmp: Path,
    database: str,
    label: str,
    env: dict[str, str],
    count: int,
    processes: int = 1,
    counts: bool = True,
    profile: Path | None = None,
) -> Result:
    counting = _Counting(tmp, "workflow", counts)
    system = start_system(tmp, database, api=False, env={**env, **counting.env()})
    try:
        add_notify_workflow(system, TENANT)
        workers = [
            system.start_worker(queues=["governance.policy"], threads=THREADS)
            for _ in range(processes)
        ]
        pids = [w.pid for w in workers]
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

        warmup = 50 * processes
        publish(warmup)
        poll(lambda: completed() >= warmup, timeout=120, message="warm-up executions")
        variant = "".join(c if c.isalnum() else "-" for c in label.split(":")[-1].strip())
        profiler = Profiler(profile, f"worker-{database}-{processes}p-{variant}")
        profiler.start(pids)
        counts_before = counting.read(pids, fresh_after=time.time())
        cpu_before = tree_cpu(pids)
        started = time.perf_counter()
        publish(count)
        poll(
            lambda: completed() >= warmup + count,
            timeout=900,
            interval=0.01,
            message=f"{count} executions completed",
        )
        elapsed = time.perf_counter() - started
        cpu_after = tree_cpu(pids)
        worker_cpu = (cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])
        profiler.stop()
        counts_after = counting.read(pids, fresh_after=time.time())
        broker.close()
        used = (
            counts_after - counts_before
            if counts_after is not None and counts_before is not None
            else None
        )
        return Result(label, count, elapsed, processes, worker_cpu, used)
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


def measure_bare(tmp: Path, count: int, processes: int = 1, counts: bool = True) -> Result:
    counting = _Counting(tmp, "probe", counts)
    probe = Probe(tmp, "stock", THREADS, processes=processes, env=counting.env())
    try:
        probe.warm_up(50 * processes)
        counts_before = counting.read([probe.process.pid], fresh_after=time.time())
        cpu_before = tree_cpu([probe.process.pid])
        rate = probe.drain_rate(count, warm_up=False)
        cpu_after = tree_cpu([probe.process.pid])
        cpu = (cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])
        counts_after = counting.read([probe.process.pid], fresh_after=time.time())
    finally:
        probe.stop()
    used = (
        counts_after - counts_before
        if counts_after is not None and counts_before is not None
        else None
    )
    label = "bare Dramatiq no-op actor (stock broker)"
    return Result(label, count, count / rate, processes, cpu, used)


def median_result(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.rate)[len(results) // 2]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_costs(result: Result, unit: str) -> None:
    pad = " " * 47
    if result.worker_cpu is not None:
        user, system = (1000 * s / result.count for s in result.worker_cpu)
        per = user + system
        target = f"  (target <= {CPU_TARGET_MS} ms: {_met(per <= CPU_TARGET_MS)})"
        print(
            f"{pad}worker CPU {per:.2f} ms per {unit} (user {user:.2f} + system {system:.2f})"
            f"{target if unit == 'execution' else ''}"
        )
    if result.counts is not None:
        per_unit = result.counts.per(result.count)
        print(f"{pad}per {unit}: {per_unit.sql_line()}")
        print(f"{pad}per {unit}: {per_unit.redis_line()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument(
        "--processes",
        default="1",
        help="comma-separated worker process counts to measure, e.g. 1,2 (each against the "
        "no-op drain with as many processes)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the variants this many times, in alternating order, and report the "
        "median of each (a busy machine's noise is larger than the differences)",
    )
    parser.add_argument(
        "--no-counts",
        dest="counts",
        action="store_false",
        help="do not count SQL statements and Redis round trips (no counting overhead)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record a py-spy profile of the worker processes during each measured run "
        "into this folder (collapsed stacks: flamegraph.pl, or drop into https://www.speedscope.app)",
    )
    parser.add_argument(
        "--variants",
        default="all",
        help="'all', or 'main' for the workflow with job status only",
    )
    args = parser.parse_args()
    process_counts = [int(p) for p in args.processes.split(",")]
    variants = VARIANTS if args.variants == "all" else VARIANTS[:1]
    bare: dict[int, Result] = {}
    results: dict[int, list[Result]] = {}
    runs: dict[tuple[int, str], list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-wf-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            for processes in process_counts:
                bare[processes] = measure_bare(tmp, args.count * 2, processes, args.counts)
                for label, _ in variants:
                    runs[processes, label] = []
                for round_ in range(args.rounds):
                    order = variants if round_ % 2 == 0 else variants[::-1]
                    for label, env in order:
                        runs[processes, label].append(
                            measure_workflow(
                                tmp,
                                args.database,
                                label,
                                env,
                                args.count,
                                processes,
                                args.counts,
                                args.profile,
                            )
                        )
                results[processes] = [
                    median_result(runs[processes, label]) for label, _ in variants
                ]
        finally:
            drop_created_databases()
    print(f"\nworkflow throughput ({args.database}, worker processes x {THREADS} threads)")
    print(f"  (load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for processes in process_counts:
        base = bare[processes]
        print(f"\n  {processes} worker process{'es' if processes > 1 else ''}:")
        print(
            f"  {base.label:45} {base.rate:9.1f} messages/s  ({base.count} in {base.seconds:.2f} s)"
        )
        print_costs(base, "message")
        for result in results[processes]:
            ratio = result.rate / base.rate
            target = f"  (target >= {RATIO_TARGET}: {_met(ratio >= RATIO_TARGET)})"
            print(
                f"  {result.label:45} {result.rate:9.1f} executions/s ({result.count} in "
                f"{result.seconds:.2f} s)  ratio {ratio:.2f}{target if processes == 1 else ''}"
            )
            print_costs(result, "execution")
        by_label = {r.label: r for r in results[processes]}
        without = by_label.get(NO_JOB_STATUS)
        if without is not None:
            main_result = results[processes][0]
            cost = 1 - main_result.rate / without.rate
            rounds = f"median of {args.rounds} rounds" if args.rounds > 1 else "1 round"
            print(
                f"  job status costs {cost:.1%} of workflow throughput ({rounds}; target <= "
                f"{JOB_STATUS_TARGET:.0%}: {_met(cost <= JOB_STATUS_TARGET)})"
            )
            if args.rounds > 1:
                pairs = zip(
                    runs[processes, VARIANTS[0][0]], runs[processes, NO_JOB_STATUS], strict=True
                )
                costs = ", ".join(f"{1 - a.rate / b.rate:.1%}" for a, b in pairs)
                print(f"  per round: {costs}")
    if len(process_counts) > 1:
        one = process_counts[0]
        print(f"\n  scaling against {one} process{'es' if one > 1 else ''}:")
        for processes in process_counts[1:]:
            base = bare[processes].rate / bare[one].rate
            print(f"  {'no-op drain':45} {base:.2f}x")
            for label, _ in variants:
                first = next(r for r in results[one] if r.label == label)
                now = next(r for r in results[processes] if r.label == label)
                scale = now.rate / first.rate
                target = f" (target >= {SCALING_TARGET}x: {_met(scale >= SCALING_TARGET)})"
                print(f"  {label:45} {scale:.2f}x{target if processes == 2 else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
