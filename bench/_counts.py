"""Counted SQL statements and Redis round trips of the processes under test.

    counts_dir = tmp / "counts"
    env = {**counting_env(counts_dir), ...}        # give it to the processes started
    before = read_counts(counts_dir, tree=worker.pid)
    ...                                            # the measured work
    after = read_counts(counts_dir, tree=worker.pid, fresh_after=time.time())
    per_execution = (after - before).per(count)

The processes count themselves (``bench/_counting/sitecustomize.py``) and write their
totals to ``<counts_dir>/<pid>.json`` several times a second. :func:`read_counts` sums
the files of one process tree (a Dramatiq worker and the worker processes it forked,
gunicorn's master and its workers), waiting until each live process has written after
``fresh_after`` so no statement of the measured work is missed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

COUNTING = Path(__file__).resolve().parent / "_counting"
SQL_KINDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "other")


def counting_env(directory: Path, pythonpath: str | None = None) -> dict[str, str]:
    """The environment that makes a process count into ``directory``: the counting
    ``sitecustomize`` first on PYTHONPATH (before ``pythonpath``, e.g. the project root)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = [str(COUNTING), *([pythonpath] if pythonpath else [])]
    return {"BENCH_COUNTS_DIR": str(directory), "PYTHONPATH": os.pathsep.join(path)}


@dataclass
class Counts:
    sql: dict[str, float] = field(default_factory=dict)
    connection_checks: float = 0
    redis_round_trips: float = 0
    redis_commands: dict[str, float] = field(default_factory=dict)

    @property
    def statements(self) -> float:
        return sum(self.sql.values())

    @property
    def commands(self) -> float:
        return sum(self.redis_commands.values())

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            _merge(self.sql, other.sql, 1),
            self.connection_checks + other.connection_checks,
            self.redis_round_trips + other.redis_round_trips,
            _merge(self.redis_commands, other.redis_commands, 1),
        )

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            _merge(self.sql, other.sql, -1),
            self.connection_checks - other.connection_checks,
            self.redis_round_trips - other.redis_round_trips,
            _merge(self.redis_commands, other.redis_commands, -1),
        )

    def per(self, n: float) -> Counts:
        return Counts(
            {k: v / n for k, v in self.sql.items()},
            self.connection_checks / n,
            self.redis_round_trips / n,
            {k: v / n for k, v in self.redis_commands.items()},
        )

    def sql_line(self) -> str:
        kinds = " ".join(f"{k} {self.sql[k]:.2f}" for k in SQL_KINDS if self.sql.get(k))
        return f"{self.statements:.2f} SQL ({kinds}) + {self.connection_checks:.2f} conn checks"

    def redis_line(self, top: int = 12) -> str:
        busiest = sorted(self.redis_commands.items(), key=lambda kv: -kv[1])[:top]
        names = " ".join(f"{k} {v:.2f}" for k, v in busiest if v)
        return (
            f"{self.redis_round_trips:.2f} Redis round trips, {self.commands:.2f} commands "
            f"({names})"
        )


def _merge(a: dict[str, float], b: dict[str, float], sign: int) -> dict[str, float]:
    merged = dict(a)
    for key, value in b.items():
        merged[key] = merged.get(key, 0) + sign * value
    return merged


def _tree(root: int, records: dict[int, dict]) -> set[int]:
    """``root`` and its descendants, from the parent ids the processes recorded."""
    members = {root}
    grew = True
    while grew:
        grew = False
        for pid, record in records.items():
            if pid not in members and record.get("ppid") in members:
                members.add(pid)
                grew = True
    return members


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie waits for its parent's wait(), it writes no more
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _load(directory: Path) -> dict[int, dict]:
    records = {}
    for path in directory.glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced meanwhile; read again
        records[int(record["pid"])] = record
    return records


def read_counts(
    directory: Path,
    *,
    tree: int | None = None,
    fresh_after: float | None = None,
    timeout: float = 10.0,
) -> Counts:
    """The sum of the counts written to ``directory`` (only process ``tree`` and its
    descendants if given); with ``fresh_after``, wait until every live process of it
    has written since then."""
    deadline = time.monotonic() + timeout
    while True:
        records = _load(directory)
        members = _tree(tree, records) if tree is not None else set(records)
        chosen = [records[pid] for pid in members if pid in records]
        stale = [
            r
            for r in chosen
            if fresh_after is not None and r["written_at"] < fresh_after and _alive(r["pid"])
        ]
        if not stale or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    total = Counts()
    for record in chosen:
        total = total + Counts(
            dict(record["sql"]),
            record["connection_checks"],
            record["redis_round_trips"],
            dict(record["redis_commands"]),
        )
    return total
