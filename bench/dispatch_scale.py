"""Dispatch's cost at 10 and at 10,000 active workflows, and its first dispatch after a change.

    .venv/bin/python bench/dispatch_scale.py [--database sqlite|postgres] [--events 2000]

Matching: a tenant with 10, then 10,000 active ``on_create`` policy workflows whose
conditions do not match the event (``policy_type eq type-<i>`` and an ``owner ne``),
plus one that does. The CPU time per event of ``ActiveWorkflowCache.match`` (what
``Engine.dispatch`` asks: the version read from Redis, then the indexed match), cache
warm, against testing every workflow with ``conditions.matches`` as dispatch did
before. Target: 10,000 within 1.2x of 10. A third tenant's 10,000 workflows have only
ordering conditions (``score gt``), which no index serves: still linear, shown for
what it costs.

First dispatch after a change: 8 threads (a worker's default) each match an event
right after the tenant's version moved, 10,000 workflows in the database, each thread
its own connection; the wall time per thread and the number of loads, for the cache
as it is (one load, the others wait for it) against one where every thread that finds
the entry stale loads it, as before.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
from _harness import REDIS_URL, database_factory, drop_created_databases, summary_ms

from shared.db import migrate, utcnow
from workflow_service.cache import ActiveWorkflowCache, _Entry, bump_version
from workflow_service.conditions import matches
from workflow_service.db import init_database
from workflow_service.matching import WorkflowIndex
from workflow_service.migrations import all_migrations
from workflow_service.models import Workflow

THREADS = 8
DATA = {"title": "Passwords", "policy_type": "security", "owner": "bob", "score": 3}
ENVELOPE = {"event_type": "policy.created", "actor": "alice"}


class EveryThreadLoads(ActiveWorkflowCache):
    """The cache as it was: each thread that finds the entry stale loads it itself."""

    def _entry(self, tenant_id, entity_type, trigger):
        token = self.client.get(self._version(tenant_id)) or b"0"
        key = (tenant_id, entity_type, trigger)
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and self._fresh(entry, token, now):
            return entry
        entry = _Entry(token, now, WorkflowIndex(self._load(tenant_id, entity_type, trigger)))
        with self._lock:
            self._entries[key] = entry
        return entry

    def _version(self, tenant_id: str) -> str:
        return f"{self.namespace}:workflows:version:{tenant_id}"


def seed(tenant: str, count: int, conditions) -> None:
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant,
            "name": f"wf {i}",
            "entity_type": "policy",
            "trigger": "on_create",
            "conditions": conditions(i),
            "steps": [{"kind": "notify", "recipients": ["owner"], "subject": "x"}],
            "status": "active",
            "created_by": "bench",
            "updated_by": "bench",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    for start in range(0, len(rows), 500):
        Workflow.insert_many(rows[start : start + 500]).execute()


def equality(i: int) -> list[dict]:
    return [
        {"field": "policy_type", "op": "eq", "value": f"type-{i}"},
        {"field": "owner", "op": "ne", "value": "nobody"},
    ]


def ordering(i: int) -> list[dict]:
    return [{"field": "score", "op": "gt", "value": 100 + i}]


def cpu_per_event(fn, events: int) -> float:
    fn()  # warm: loads the entry
    best = []
    for _ in range(3):
        started = time.thread_time()
        for _ in range(events):
            fn()
        best.append((time.thread_time() - started) / events)
    return min(best)


def measure_matching(cache: ActiveWorkflowCache, events: int) -> None:
    print(f"\nmatching one event, CPU time per event (best of 3 x {events} events)")
    results = {}
    for tenant in ("small", "large", "ordering"):
        indexed = cpu_per_event(
            lambda t=tenant: cache.match(t, "policy", "on_create", DATA, ENVELOPE), events
        )
        scanned = cpu_per_event(
            lambda t=tenant: [
                w
                for w in cache.get(t, "policy", "on_create")
                if matches(w.conditions, DATA, ENVELOPE)
            ],
            max(20, events // 100) if tenant != "small" else events,
        )
        index = cache._entry(tenant, "policy", "on_create").index
        alone = cpu_per_event(lambda i=index: i.match(DATA, ENVELOPE), events)
        found = cache.match(tenant, "policy", "on_create", DATA, ENVELOPE)
        results[tenant] = (indexed, scanned)
        print(
            f"  {tenant:8} {len(index):6} workflows ({len(found)} match): "
            f"get + indexed match {indexed * 1e6:8.1f} us (the match alone {alone * 1e6:7.1f} us)"
            f"   get + every workflow tested {scanned * 1e6:9.1f} us"
        )
    (small, small_scan), (large, large_scan) = results["small"], results["large"]
    print(
        f"  10,000 vs 10 equality workflows: indexed {large / small:.2f}x "
        f"(target <= 1.2x), every workflow tested {large_scan / small_scan:.0f}x"
    )
    print(
        f"  10,000 ordering-only workflows (no index applies): "
        f"{results['ordering'][0] / small:.0f}x of 10, "
        f"{results['ordering'][1] / results['ordering'][0]:.1f}x faster than before"
    )


def first_dispatch(
    cache: ActiveWorkflowCache, client: redis.Redis, namespace: str, db, threads: int = THREADS
):
    """Wall time of each thread's first match after a version change; loads made."""
    cache.match("large", "policy", "on_create", DATA, ENVELOPE)  # warm
    loads = cache.loads
    bump_version(client, namespace, "large")
    barrier = threading.Barrier(threads)
    times: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        db.connect(reuse_if_open=True)
        try:
            barrier.wait()
            started = time.perf_counter()
            cache.match("large", "policy", "on_create", DATA, ENVELOPE)
            elapsed = time.perf_counter() - started
            with lock:
                times.append(elapsed)
        finally:
            db.close()

    started = [threading.Thread(target=one) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return times, cache.loads - loads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    namespace = f"bench-dispatch-{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(REDIS_URL)
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp_name:
        try:
            db = init_database(database_factory(args.database, Path(tmp_name))("wf"))
            migrate(db, all_migrations())
            seed("small", 10, equality)
            seed("large", 10_000, equality)
            seed("ordering", 10_000, ordering)
            for tenant in ("small", "large"):
                seed(
                    tenant, 1, lambda i: [{"field": "policy_type", "op": "eq", "value": "security"}]
                )
            db.close()

            measure_matching(ActiveWorkflowCache(client, namespace), args.events)

            print(f"\nfirst dispatch after a workflow change, {THREADS} threads, 10,001 workflows")
            alone = [
                first_dispatch(ActiveWorkflowCache(client, namespace), client, namespace, db, 1)
                for _ in range(3)
            ]
            times = [t for ts, _ in alone for t in ts]
            print(f"  {'one thread alone (the load itself)':34} {summary_ms(times)}")
            rows = {}
            for label, cache in (
                ("every stale thread loads (before)", EveryThreadLoads(client, namespace)),
                ("one load, the others wait (now)", ActiveWorkflowCache(client, namespace)),
            ):
                rounds = [first_dispatch(cache, client, namespace, db) for _ in range(3)]
                times = [t for ts, _ in rounds for t in ts]
                loads = [n for _, n in rounds]
                rows[label] = statistics.median(times)
                print(f"  {label:34} {summary_ms(times)}  loads per change {loads}")
            before, now = rows.values()
            print(f"  median first dispatch: {before / now:.1f}x faster with one load")
        finally:
            for key in client.scan_iter(match=f"{namespace}*", count=1000):
                client.delete(key)
            client.close()
            drop_created_databases()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
