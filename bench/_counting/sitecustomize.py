"""Counts a process's SQL statements and Redis round trips, for the benchmarks.

Bench-only. Python imports ``sitecustomize`` at start-up from the first folder of
``sys.path`` that has one, so a process started with this folder at the front of its
PYTHONPATH and ``BENCH_COUNTS_DIR`` naming a folder counts, from its first statement:

* SQL statements, by kind (SELECT, INSERT, UPDATE, DELETE, BEGIN, COMMIT, ROLLBACK,
  other): every ``peewee.Database.execute_sql`` plus the BEGIN / COMMIT / ROLLBACK
  peewee sends on its own cursor; and connection checks: the pool's test of a
  connection it hands out (on PostgreSQL a ``SELECT 1`` round trip when the connection
  is idle, a ROLLBACK otherwise; on SQLite an attribute read, no statement). Checks are
  not in the statement totals; ``statements + checks`` is what reached the database.
* Redis round trips: each ``Connection.send_packed_command`` (one write of one command
  or of a whole pipeline, answered before the connection is used again), and the
  commands inside them by name (a Lua script is one ``EVALSHA``).

Each process (gunicorn and Dramatiq fork their workers: a child starts from zero)
writes its totals as JSON to ``<BENCH_COUNTS_DIR>/<pid>.json`` every
``BENCH_COUNTS_INTERVAL`` seconds (0.25 by default), with the time of the write, and
at exit. ``bench/_counts.py`` reads them.

Without ``BENCH_COUNTS_DIR`` this module does nothing.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time

_DIR = os.environ.get("BENCH_COUNTS_DIR")

_KINDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK")


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sql: dict[str, int] = {}
        self.checks = 0
        self.round_trips = 0
        self.commands: dict[str, int] = {}

    def add_sql(self, kind: str) -> None:
        with self.lock:
            self.sql[kind] = self.sql.get(kind, 0) + 1

    def add_check(self) -> None:
        with self.lock:
            self.checks += 1

    def add_round_trip(self) -> None:
        with self.lock:
            self.round_trips += 1

    def add_commands(self, names: list[str]) -> None:
        with self.lock:
            for name in names:
                self.commands[name] = self.commands.get(name, 0) + 1

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "argv": sys.argv,
                "written_at": time.time(),
                "sql": dict(self.sql),
                "connection_checks": self.checks,
                "redis_round_trips": self.round_trips,
                "redis_commands": dict(self.commands),
            }


_counts = _Counts()


def _sql_kind(sql: str) -> str:
    word = sql.lstrip()[:8].split(None, 1)
    kind = word[0].upper() if word else ""
    return kind if kind in _KINDS else "other"


def _command_name(name: object) -> str:
    if isinstance(name, bytes | bytearray | memoryview):
        name = bytes(name).decode("ascii", "replace")
    return str(name).upper()


def _patch_peewee() -> None:
    try:
        import peewee
    except ImportError:
        return

    original_execute_sql = peewee.Database.execute_sql

    def execute_sql(self, sql, params=None, *args, **kwargs):
        _counts.add_sql(_sql_kind(sql))
        return original_execute_sql(self, sql, params, *args, **kwargs)

    peewee.Database.execute_sql = execute_sql

    # peewee sends these on its own cursor, not through execute_sql.
    for cls in (peewee.Database, peewee.SqliteDatabase, peewee.PostgresqlDatabase):
        for name, kind in (("begin", "BEGIN"), ("commit", "COMMIT"), ("rollback", "ROLLBACK")):
            if name in vars(cls):
                setattr(cls, name, _counting(vars(cls)[name], kind))

    for adapter in ("Psycopg2Adapter", "Psycopg3Adapter"):
        cls = getattr(peewee, adapter, None)
        if cls is not None and hasattr(cls, "is_connection_closed"):
            original = cls.is_connection_closed

            def is_connection_closed(self, conn, _original=original):
                _counts.add_check()
                return _original(self, conn)

            cls.is_connection_closed = is_connection_closed
    try:
        from playhouse import pool
    except ImportError:
        return
    sqlite_pool = getattr(pool, "_PooledSqliteDatabase", None)
    if sqlite_pool is not None and "_is_closed" in vars(sqlite_pool):
        original_is_closed = sqlite_pool._is_closed

        def _is_closed(self, conn):
            _counts.add_check()
            return original_is_closed(self, conn)

        sqlite_pool._is_closed = _is_closed


def _counting(method, kind):
    def counted(self, *args, **kwargs):
        _counts.add_sql(kind)
        return method(self, *args, **kwargs)

    counted.__name__ = method.__name__
    counted.__qualname__ = method.__qualname__
    return counted


def _patch_redis() -> None:
    try:
        from redis.connection import AbstractConnection
    except ImportError:
        return

    original_send_packed = AbstractConnection.send_packed_command
    original_send_command = AbstractConnection.send_command
    original_pack_commands = AbstractConnection.pack_commands

    def send_packed_command(self, command, check_health=True):
        _counts.add_round_trip()
        return original_send_packed(self, command, check_health)

    def send_command(self, *args, **kwargs):
        if args:
            _counts.add_commands([_command_name(args[0])])
        return original_send_command(self, *args, **kwargs)

    def pack_commands(self, commands):
        commands = list(commands)
        _counts.add_commands([_command_name(c[0]) for c in commands if c])
        return original_pack_commands(self, commands)

    AbstractConnection.send_packed_command = send_packed_command
    AbstractConnection.send_command = send_command
    AbstractConnection.pack_commands = pack_commands


def _write() -> None:
    path = os.path.join(_DIR, f"{os.getpid()}.json")
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w") as out:
            json.dump(_counts.snapshot(), out)
        os.replace(temporary, path)
    except OSError:
        pass  # the folder went away with the benchmark


def _writer() -> None:
    interval = float(os.environ.get("BENCH_COUNTS_INTERVAL", "0.25"))
    while True:
        time.sleep(interval)
        _write()


def _start_writer() -> None:
    threading.Thread(target=_writer, name="bench-counts", daemon=True).start()


def _after_fork_in_child() -> None:
    global _counts
    _counts = _Counts()
    _start_writer()


if _DIR:
    _patch_peewee()
    _patch_redis()
    os.makedirs(_DIR, exist_ok=True)
    _start_writer()
    atexit.register(_write)
    os.register_at_fork(after_in_child=_after_fork_in_child)
