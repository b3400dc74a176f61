"""The group commit of policy creates: many request threads, one transaction.

(On SQLite, writers take turns through :class:`shared.db.QueuedWritersSqlite`;
PostgreSQL's row locks and the callers' conditional UPDATEs need nothing more.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

import peewee

from shared.sql import Statement
from shared.threads import ProcessThread


class _Work:
    __slots__ = ("statements", "done", "error")

    def __init__(self, statements: Sequence[Statement]):
        self.statements = statements
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommit:
    """Commits the writes of many request threads in one transaction: a group commit.

    Every write takes its turn at the database's write lock (SQLite has one writer) and
    pays for a commit. Under load, request threads spent about 40% of their time
    waiting for that turn. Here one thread per process takes the statements of every
    write queued meanwhile and commits them in one transaction; on PostgreSQL they go
    in one round trip. If one write fails, the group is rolled back and each write
    committed on its own, so only the failing one fails (its caller gets the error).
    """

    MAX_BATCH = 64

    def __init__(self, db: peewee.Database):
        self.db = db
        self._queue: list[_Work] = []
        self._cond = threading.Condition()
        self._committer = ProcessThread(self._commit_forever, "group-commit")

    def run(self, statements: Sequence[Statement]) -> None:
        """Run ``statements`` in the next group's transaction; returns once committed."""
        item = _Work(statements)
        with self._cond:
            self._committer.ensure()
            self._queue.append(item)
            self._cond.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error

    def _commit_forever(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue)
                batch = self._queue[: self.MAX_BATCH]
                del self._queue[: self.MAX_BATCH]
            try:
                with self.db.connection_context():
                    self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - no connection: all failed
                for item in batch:
                    item.error = item.error or exc
            finally:
                for item in batch:
                    item.done.set()

    def _commit(self, batch: list[_Work]) -> None:
        statements = [s for item in batch for s in item.statements]
        try:
            if isinstance(self.db, peewee.PostgresqlDatabase):
                self._commit_postgres(statements)
            else:
                with self.db.atomic():
                    for sql, params in statements:
                        self.db.execute_sql(sql, params)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            # One write failed and the group was rolled back: commit each on its own,
            # so only the failing one fails.
            for item in batch:
                self._commit([item])

    def _commit_postgres(self, statements: list[Statement]) -> None:
        """BEGIN, the statements and COMMIT in one round trip.

        psycopg2 inlines the parameters, so the whole transaction goes as one query
        string, and the server stops at the first error, leaving the transaction
        aborted: rolled back here before the error is raised.
        """
        sql = ";\n".join(["BEGIN", *(text for text, _ in statements), "COMMIT"])
        try:
            self.db.execute_sql(sql, [p for _, params in statements for p in params])
        except Exception:
            with contextlib.suppress(peewee.DatabaseError):
                self.db.execute_sql("ROLLBACK")
            raise
