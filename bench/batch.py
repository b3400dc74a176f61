"""Import and export throughput, and the export worker's memory, against the api's own.

    .venv/bin/python bench/batch.py --database sqlite
    .venv/bin/python bench/batch.py --database postgres --policies 100000 --imports 2000

Starts the real system (api web, workflow web, one worker group on governance.import
and one on governance.export), then:

* seeds ``--policies`` policies straight into the api's database (one INSERT per few
  thousand rows, not through HTTP);
* baseline: the api's own list throughput (``GET /policies?limit=200`` page after page,
  one client, as an export reads it) and its create throughput (``POST /policies`` one
  after the other, as an import writes);
* exports all of them as CSV (and XLSX and JSON), timing each job from request to
  success, sampling the export worker's RSS every 20 ms: its peak growth over its RSS
  just before the export is the figure (target: at most 50 MB at 100,000 policies);
* imports ``--imports`` rows (a new tenant), timed from request to success.

Prints rows/s of each beside its baseline, and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _harness import REDIS_URL, database_factory, drop_created_databases

from tests.support import poll
from tests.system import System

TENANT = "bench"
RSS_TARGET_MB = 50


def seed(api_database_url: str, count: int, tenant: str = TENANT) -> float:
    """``count`` policies of ``tenant`` written into the api's database; seconds taken."""
    from api_service.models import Policy, database
    from shared.db import open_database

    db = open_database(api_database_url)
    database.initialize(db)
    started = time.perf_counter()
    base = dt.datetime(2026, 1, 1)
    batch = 2000
    with db.connection_context():
        for start in range(0, count, batch):
            rows = []
            for i in range(start, min(start + batch, count)):
                at = base + dt.timedelta(seconds=i)
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "tenant": tenant,
                        "title": f"Policy {i}",
                        "policy_type": ("security", "privacy", "operations")[i % 3],
                        "content": f"Content of policy {i}. " * 4,
                        "owner": f"owner{i % 50}",
                        "status": "draft",
                        "version": 1,
                        "review_frequency": "annual",
                        "tags": ["iso27001", f"t{i % 7}"],
                        "created_by": "seed",
                        "created_at": at,
                        "updated_by": "seed",
                        "updated_at": at,
                    }
                )
            with db.atomic():
                Policy.insert_many(rows).execute()
    db.close()
    return time.perf_counter() - started


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, in KiB."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(c) for c in children.read().split()]
        except OSError:
            continue
    return total


class RssSampler:
    def __init__(self, pid: int, every_s: float = 0.02):
        self.pid, self.every_s = pid, every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            time.sleep(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def list_rate(system: System, tenant: str) -> tuple[int, float]:
    api = system.api_client(roles=["viewer"], tenant=tenant)
    rows, cursor = 0, None
    started = time.perf_counter()
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = api.get("/policies", params=params, timeout=60).raise_for_status().json()
        rows += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return rows, rows / (time.perf_counter() - started)


def create_rate(system: System, count: int) -> float:
    api = system.api_client(roles=["editor"], tenant=f"direct-{uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    for i in range(count):
        body = {"title": f"Direct {i}", "policy_type": "security", "tags": ["a"]}
        headers = {"Idempotency-Key": f"direct-{i}"}
        api.post("/policies", json=body, headers=headers).raise_for_status()
    return count / (time.perf_counter() - started)


def wait_job(system: System, tenant: str, job_id: str, timeout: float = 900) -> dict:
    api = system.api_client(roles=["auditor"], tenant=tenant)

    def done():
        record = api.get(f"/jobs/{job_id}").json()
        if record.get("state") == "failed":
            raise RuntimeError(f"job {job_id} failed: {record.get('error')}")
        return record if record.get("state") == "succeeded" else None

    return poll(done, timeout=timeout, interval=0.05, message=f"job {job_id}")


def export_run(system: System, worker_pid: int, file_format: str) -> tuple[float, int]:
    """(seconds, peak RSS growth in KiB) of one export of every policy."""
    client = system.workflow_client(sub="audrey", roles=["auditor"], tenant=TENANT)
    before = rss_kb(worker_pid)
    with RssSampler(worker_pid) as sampler:
        started = time.perf_counter()
        answer = client.post(
            "/exports", json={"entity_type": "policy", "format": file_format, "filters": {}}
        )
        answer.raise_for_status()
        wait_job(system, TENANT, answer.json()["job"]["id"])
        elapsed = time.perf_counter() - started
    return elapsed, max(sampler.peak - before, 0)


def import_run(system: System, rows: int) -> float:
    tenant = f"imp-{uuid.uuid4().hex[:6]}"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["title", "policy_type", "review_frequency", "tags"])
    for i in range(rows):
        writer.writerow([f"Imported {i}", "security", "annual", "a;b"])
    client = system.workflow_client(sub="edith", roles=["editor"], tenant=tenant)
    started = time.perf_counter()
    answer = client.post(
        "/imports", content=out.getvalue().encode(), headers={"Content-Type": "text/csv"}
    )
    answer.raise_for_status()
    import_id = answer.json()["import"]["id"]

    def finished():
        body = client.get(f"/imports/{import_id}").json()
        if body["status"] == "failed":
            raise RuntimeError(f"import failed: {body['error']}")
        return body if body["status"] == "succeeded" else None

    body = poll(finished, timeout=1800, interval=0.05, message="the import")
    elapsed = time.perf_counter() - started
    assert body["created"] == rows, body
    return rows / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--policies", type=int, default=100_000)
    parser.add_argument("--imports", type=int, default=2_000)
    parser.add_argument("--formats", default="csv,xlsx,json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp_name:
        tmp = Path(tmp_name)
        env = {"FILES_DIR": str(tmp / "files")}
        system = System(tmp, database_factory(args.database, tmp), REDIS_URL, env=env)
        try:
            system.start(api=True, workers=0)
            export_worker = system.start_worker(["governance.export"], threads=1)
            system.start_worker(["governance.import"], threads=1)
            seed_s = seed(system.api_database_url, args.policies)
            listed, list_per_s = list_rate(system, TENANT)
            assert listed == args.policies, listed
            create_per_s = create_rate(system, min(args.imports, 1000))
            # Warm-up: the worker imports its writers before the measured runs.
            exports = {}
            for file_format in args.formats.split(","):
                exports[file_format] = export_run(system, export_worker.pid, file_format)
            import_per_s = import_run(system, args.imports)
        finally:
            system.stop()
            drop_created_databases()
    print(f"\nbatch ({args.database}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    print(f"  seeded {args.policies} policies into the api's database in {seed_s:.1f} s")
    print(f"  baseline: api list (GET /policies, 200 a page)   {list_per_s:9.0f} rows/s")
    print(f"  baseline: api create (POST /policies, one client) {create_per_s:8.0f} rows/s")
    for file_format, (seconds, growth_kb) in exports.items():
        rate = args.policies / seconds
        growth_mb = growth_kb / 1024
        verdict = "met" if growth_mb <= RSS_TARGET_MB else "NOT met"
        print(
            f"  export {file_format:5} {rate:9.0f} rows/s ({seconds:.1f} s; ratio to list "
            f"{rate / list_per_s:.2f}); worker peak RSS +{growth_mb:.1f} MB "
            f"(target <= {RSS_TARGET_MB} MB: {verdict})"
        )
    print(
        f"  import ({args.imports} rows) {import_per_s:9.0f} rows/s "
        f"(ratio to direct creates {import_per_s / create_per_s:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
