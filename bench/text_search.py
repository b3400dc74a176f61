"""Text search (``q``) at 1,000 and at 100,000 policies: through the index, and the scan.

    .venv/bin/python bench/text_search.py [--database sqlite|postgres] [--repeat 25]

For each size, a fresh database is migrated to version 7, filled with policies in one
transaction (``Policy.insert_many``; titles of five and contents of 40 words drawn from
5,000 made-up ones), then migration 8 builds the index from those rows (the backfill an
existing database gets; its time is printed). One policy in the middle holds a rare word.

Each search is ``PolicyService.search`` (what ``GET /policies?q=`` calls: the first page
of 50, newest first), and for comparison the same page through the scan it replaced
(``search.policies(..., use_index=False)``). Both sizes stay open and the rounds
interleave sizes, needles and paths, so a busy moment weighs on all alike. Printed: the
p50 per size, the ratio of 100,000 to 1,000 (the target: far below the ~100x a scan
costs), the index path's time over the scan's at each size, the SQL statements one
search sends, and the plans at 100,000. A common word and a two-letter needle (always
scanned) are shown for what they cost, not as targets.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import string
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api_service import search  # noqa: E402
from api_service.migrations import MIGRATIONS  # noqa: E402
from api_service.models import Policy, database  # noqa: E402
from api_service.policies import ListFilters, PolicyService  # noqa: E402
from shared.auth import Principal  # noqa: E402
from shared.db import is_postgres, migrate, open_database, utcnow  # noqa: E402

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TENANT = "bench"
PRINCIPAL = Principal(sub="reader", roles=frozenset({"viewer"}), tenant=TENANT)
RARE = "Zebrafish"
SIZES = (1_000, 100_000)


class Bench:
    """One database of ``size`` policies, and the statements it is sent."""

    def __init__(self, kind: str, size: int, tmp: Path):
        self.kind, self.size = kind, size
        self.name = f"gw_bench_text_{size}_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            url = f"sqlite:///{tmp / (self.name + '.db')}"
        else:
            self._admin(f'CREATE DATABASE "{self.name}"')
            url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{self.name}"
        self.db = open_database(url)
        database.initialize(self.db)
        # Reads only: no outbox.
        self.service = PolicyService(self.db, None, utcnow)  # type: ignore[arg-type]
        self.statements = 0
        self.last: tuple[str, object] = ("", None)
        execute_sql = self.db.execute_sql

        def counting(sql, params=None, *args, **kwargs):
            self.statements += 1
            self.last = (sql, params)
            return execute_sql(sql, params, *args, **kwargs)

        self.db.execute_sql = counting  # type: ignore[method-assign]

    def _admin(self, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(POSTGRES_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
        conn.close()

    def seed(self, words: list[str]) -> tuple[float, float]:
        """(seconds to insert, seconds of migration 8's backfill)."""
        rng = random.Random(self.size)
        start = datetime(2030, 1, 1)
        with self.db.connection_context():
            migrate(self.db, [m for m in MIGRATIONS if m.version <= 7])
        began = time.perf_counter()
        with self.db.connection_context(), self.db.atomic():
            rows = []
            for i in range(self.size):
                title = " ".join(rng.choices(words, k=5)).capitalize()
                if i == self.size // 2:
                    title += f" {RARE}"
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "tenant": TENANT,
                        "title": title,
                        "policy_type": "security",
                        "content": " ".join(rng.choices(words, k=40)),
                        "owner": "alice",
                        "created_by": "alice",
                        "updated_by": "alice",
                        "created_at": start + timedelta(seconds=i),
                        "updated_at": start + timedelta(seconds=i),
                    }
                )
                if len(rows) == 1000:
                    Policy.insert_many(rows).execute()
                    rows = []
            if rows:
                Policy.insert_many(rows).execute()
        inserted = time.perf_counter() - began
        began = time.perf_counter()
        with self.db.connection_context():
            migrate(self.db, MIGRATIONS)
        backfill = time.perf_counter() - began
        if is_postgres(self.db):
            # What autovacuum does soon after a bulk load (SQLite keeps no statistics
            # unless asked, and the service never asks).
            with self.db.connection_context():
                self.db.execute_sql("ANALYZE policy")
        return inserted, backfill

    def indexed(self, q: str) -> int:
        rows, _ = self.service.search(PRINCIPAL, ListFilters(q=q), after=None, limit=50)
        return len(rows)

    def scanned(self, q: str) -> int:
        query = search.policies(self.db, TENANT, q, use_index=False)
        return len(list(query.order_by(Policy.created_at.desc(), Policy.id.desc()).limit(51)))

    def once(self, run: Callable[[str], int], q: str) -> tuple[float, int, int]:
        """(ms, rows, statements) of one search."""
        database.initialize(self.db)  # the models' database: this size's
        before = self.statements
        began = time.perf_counter()
        found = run(q)
        return (time.perf_counter() - began) * 1000, found, self.statements - before

    def plan(self) -> str:
        """The plan of the last statement sent (a search's page), one line."""
        sql, params = self.last
        explain = "EXPLAIN " if is_postgres(self.db) else "EXPLAIN QUERY PLAN "
        rows = self.db.execute_sql(explain + sql, params).fetchall()
        lines = [str(row[0] if is_postgres(self.db) else row[-1]).strip() for row in rows]
        return " / ".join(line.split("  (cost")[0] for line in lines if "Cond" not in line)

    def close(self) -> None:
        self.db.close()
        if self.kind == "postgres":
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()
    rng = random.Random(1)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(5000)]
    needles = [("rare word", RARE.lower()), ("common word", words[0]), ("two letters", "ze")]
    samples: dict[tuple[str, str, int], list[float]] = {}
    found: dict[tuple[str, str, int], tuple[int, int]] = {}
    plans: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        benches = []
        for size in SIZES:
            bench = Bench(args.database, size, Path(tmp))
            stack.callback(bench.close)
            inserted, backfill = bench.seed(words)
            print(
                f"{size:>7} policies: inserted in {inserted:.1f} s, "
                f"index backfill (migration 8) {backfill:.1f} s",
                flush=True,
            )
            if is_postgres(bench.db):
                with bench.db.connection_context():
                    sizes = bench.db.execute_sql(
                        "SELECT pg_size_pretty(pg_relation_size('policy_title_trgm')), "
                        "pg_size_pretty(pg_relation_size('policy_content_trgm')), "
                        "pg_size_pretty(pg_table_size('policy'))"
                    ).fetchone()
                print(f"          indexes: title {sizes[0]}, content {sizes[1]}; table {sizes[2]}")
            benches.append(bench)
        for bench in benches:
            stack.enter_context(bench.db.connection_context())
        # Rounds interleave sizes, needles and paths, so a busy moment of the machine
        # weighs on all of them alike; the first round warms caches and is not counted.
        for round_ in range(args.repeat + 1):
            for bench in benches:
                for label, q in needles:
                    for path in ("index", "scan"):
                        run = bench.indexed if path == "index" else bench.scanned
                        ms, rows, statements = bench.once(run, q)
                        key = (label, path, bench.size)
                        if round_:
                            samples.setdefault(key, []).append(ms)
                        found[key] = (rows, statements)
                        if round_ == 0 and bench.size == max(SIZES):
                            plans[(label, path)] = bench.plan()
    small, large = SIZES
    p50 = {key: statistics.median(values) for key, values in samples.items()}
    print(f"\n{args.database}: p50 of one search (the first page of 50), ms, {args.repeat} rounds")
    print(
        f"{'needle':<24}{'path':<7}{small:>10,}{large:>10,}{'ratio':>8}"
        f"{'rows':>6}{'statements':>12}"
    )
    for label, q in needles:
        for path in ("index", "scan"):
            a, b = p50[(label, path, small)], p50[(label, path, large)]
            rows, statements = found[(label, path, large)]
            print(
                f"{label + ' ' + repr(q):<24}{path:<7}{a:>10.2f}{b:>10.2f}{b / a:>7.1f}x"
                f"{rows:>6}{statements:>12}"
            )
        for size in SIZES:
            ratio = p50[(label, "index", size)] / p50[(label, "scan", size)]
            print(f"{'':<24}at {size:,}: the index path takes {ratio:.3f}x the scan's time")
    print(f"\nplans at {large:,} (the page's statement)")
    for (label, path), plan in plans.items():
        print(f"  {label:<12} {path:<6} {plan}")


if __name__ == "__main__":
    main()
