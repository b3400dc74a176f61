"""SQLite writers take turns (threads and processes) instead of failing or busy-waiting.

The databases here have SQLite's busy timeout at zero: a writer that finds the
database locked fails at once with "database is locked". Only the writer queue of
``shared.db.QueuedWritersSqlite`` keeps the writers below from colliding; the control
test shows the same load on a plain peewee database does collide.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import peewee
import pytest

from shared.db import SQLITE_PRAGMAS, QueuedWritersSqlite

ROOT = Path(__file__).resolve().parents[2]
THREADS = 8
WRITES = 150

#: A second process writing to the same file, through its own queue.
OTHER_PROCESS = """
import sys
sys.path.insert(0, sys.argv[2])
from tests.shared.test_sqlite_writers import open_unpatient, write_load
write_load(open_unpatient(sys.argv[1]), "other", int(sys.argv[3]))
"""


def open_unpatient(path: str, cls: type[peewee.SqliteDatabase] = QueuedWritersSqlite):
    """A database whose writers fail at once when the file is locked."""
    return cls(
        path, pragmas={**SQLITE_PRAGMAS, "busy_timeout": 0}, timeout=0, check_same_thread=False
    )


def write_load(db: peewee.SqliteDatabase, who: str, writes: int) -> None:
    """Autocommit inserts, and transactions that read a counter before bumping it."""
    for i in range(writes):
        db.execute_sql("INSERT INTO log (who, n) VALUES (?, ?)", (who, i))
        with db.atomic():
            (value,) = db.execute_sql("SELECT value FROM counter").fetchone()
            db.execute_sql("UPDATE counter SET value = ?", (value + 1,))
    db.close()


def _prepare(path: Path) -> None:
    db = peewee.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS)
    db.execute_sql("CREATE TABLE log (who TEXT, n INTEGER)")
    db.execute_sql("CREATE TABLE counter (value INTEGER)")
    db.execute_sql("INSERT INTO counter VALUES (0)")
    db.close()


def _writes_from_another_thread(db: peewee.SqliteDatabase, who: str) -> bool:
    """Whether a write from a new thread gets its turn within 5 s."""
    done = threading.Event()

    def write() -> None:
        db.execute_sql("INSERT INTO log VALUES (?, 1)", (who,))
        db.close()
        done.set()

    threading.Thread(target=write).start()
    return done.wait(5)


def _run_threads(db: peewee.SqliteDatabase) -> list[BaseException]:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            write_load(db, f"thread-{n}", WRITES)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_threads_and_processes_write_in_turn_without_a_lock_error_or_a_lost_update(tmp_path):
    path = tmp_path / "writers.db"
    _prepare(path)
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS, str(path), str(ROOT), str(WRITES * 2)],
        stderr=subprocess.PIPE,
        text=True,
    )
    errors = _run_threads(open_unpatient(str(path)))
    _, stderr = other.communicate(timeout=120)
    assert errors == []
    assert other.returncode == 0, stderr

    check = peewee.SqliteDatabase(str(path))
    assert check.execute_sql("SELECT count(*) FROM log").fetchone()[0] == WRITES * (THREADS + 2)
    # Every read-then-write transaction saw the value the one before it wrote.
    assert check.execute_sql("SELECT value FROM counter").fetchone()[0] == WRITES * (THREADS + 2)
    check.close()


def test_control_the_same_load_without_the_queue_collides(tmp_path):
    path = tmp_path / "plain.db"
    _prepare(path)
    errors = _run_threads(open_unpatient(str(path), peewee.SqliteDatabase))
    assert errors, "the load did not collide: the test above would prove nothing"
    assert all("locked" in str(e) for e in errors), errors


def test_nested_transactions_and_failures_give_the_turn_back(tmp_path):
    path = tmp_path / "nested.db"
    _prepare(path)
    db = open_unpatient(str(path))
    with db.atomic():
        db.execute_sql("INSERT INTO log VALUES ('a', 1)")
        with db.atomic():  # a savepoint: no second turn to take
            db.execute_sql("INSERT INTO log VALUES ('a', 2)")
    with pytest.raises(RuntimeError), db.atomic():
        db.execute_sql("INSERT INTO log VALUES ('b', 1)")
        raise RuntimeError("rolled back")
    with pytest.raises(peewee.OperationalError):
        db.execute_sql("INSERT INTO nowhere VALUES (1)")
    # The turn is free again: another thread writes at once.
    assert _writes_from_another_thread(db, "c")
    rows = db.execute_sql("SELECT who, n FROM log ORDER BY who, n").fetchall()
    assert rows == [("a", 1), ("a", 2), ("c", 1)]
    db.close()


def test_a_forked_child_takes_its_own_turn_even_if_forked_mid_write(tmp_path):
    # gunicorn and Dramatiq fork their workers; a lock held at that moment must not be
    # held forever in the child
    path = tmp_path / "fork.db"
    _prepare(path)
    db = open_unpatient(str(path))
    db._writers.acquire()  # this process holds the turn while it forks
    pid = os.fork()
    if pid == 0:  # the child: writes once the parent lets go, or dies after 10 s
        signal.alarm(10)
        try:
            db.execute_sql("INSERT INTO log VALUES ('child', 1)")
            os._exit(0)
        except BaseException:  # noqa: BLE001 - report through the exit status
            os._exit(1)
    time.sleep(0.3)  # the child waits for the turn meanwhile
    check = peewee.SqliteDatabase(str(path))
    assert check.execute_sql("SELECT count(*) FROM log").fetchone()[0] == 0
    db._writers.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert db.execute_sql("SELECT who FROM log").fetchall() == [("child",)]
    db.close()


def test_a_turn_left_behind_by_an_interrupted_write_is_given_back(tmp_path):
    # Dramatiq's time limit raises into a thread at any moment, e.g. between taking the
    # turn and writing; that thread's next write or transaction gives the turn back
    path = tmp_path / "healed.db"
    _prepare(path)
    db = open_unpatient(str(path))
    db._writers.acquire()  # taken, and never released by the interrupted write
    db.execute_sql("INSERT INTO log VALUES ('same thread', 1)")
    assert _writes_from_another_thread(db, "other thread")
    db._writers.acquire()
    with db.atomic():  # a transaction heals it too
        db.execute_sql("INSERT INTO log VALUES ('same thread', 2)")
    assert _writes_from_another_thread(db, "other thread")
    assert db.execute_sql("SELECT count(*) FROM log").fetchone()[0] == 4
    db.close()
