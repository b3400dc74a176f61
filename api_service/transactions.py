"""Write transactions that behave well under concurrent writers on both databases.

SQLite allows one writer at a time. Left to itself, a writer that finds the database
locked waits in SQLite's busy handler, which sleeps in growing steps (1, 2, 5, 10 ms
and more) whether or not the lock was freed meanwhile: under load that turns
sub-millisecond transactions into tail latencies of tens of milliseconds. So writers
queue instead: threads of a process on a lock, processes on an ``flock`` of a file
beside the database; the kernel wakes the next one the moment the lock is released.
The transaction then begins IMMEDIATE (write lock taken at BEGIN), because in WAL mode
a transaction that read first and upgraded later fails outright if another writer
committed in between.

PostgreSQL needs none of this: its row locks and the conditional UPDATEs of the
callers do the work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator

import peewee


class _WriterQueue:
    """One per SQLite database and process: a thread lock plus a file lock."""

    def __init__(self, path: str):
        self.path = path + "-writers.lock"
        self.thread_lock = threading.Lock()
        self.fd: int | None = None
        self.pid = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self.thread_lock:
            if self.fd is None or self.pid != os.getpid():
                # Opened lazily in the process that uses it: a descriptor inherited
                # across fork would share its lock with the parent.
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self.pid = os.getpid()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


_queues: weakref.WeakKeyDictionary[peewee.Database, _WriterQueue] = weakref.WeakKeyDictionary()
_queues_lock = threading.Lock()


def _writer_queue(db: peewee.SqliteDatabase) -> _WriterQueue | None:
    if db.database == ":memory:" or str(db.database).startswith("file:"):
        return None
    with _queues_lock:
        queue = _queues.get(db)
        if queue is None:
            queue = _queues[db] = _WriterQueue(os.path.abspath(db.database))
        return queue


@contextlib.contextmanager
def write_transaction(db: peewee.Database) -> Iterator[None]:
    """A write transaction; on SQLite, taken in turn rather than by busy-waiting."""
    if isinstance(db, peewee.SqliteDatabase):
        queue = _writer_queue(db)
        with queue.held() if queue else contextlib.nullcontext(), db.atomic("IMMEDIATE"):
            yield
    else:
        with db.atomic():
            yield
