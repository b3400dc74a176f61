"""Database plumbing both services use: URL parsing, connection scopes, migrations.

Each service owns its own database and models; this module only knows how to open a
peewee database from a URL, hold one connection per request or message, and apply a
service's ordered list of migrations.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peewee
import psycopg2
from dramatiq.middleware import Middleware
from playhouse.db_url import connect, parse
from playhouse.migrate import SchemaMigrator
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase, PooledSqliteDatabase

log = logging.getLogger(__name__)

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 10_000,
    "synchronous": "normal",
    "foreign_keys": 1,
    "cache_size": -16_000,
}


def pooled_url(url: str, max_connections: int, wait_seconds: float = 10) -> str:
    """``url`` through peewee's connection pool (``postgresql+pool://``, ``sqlite+pool://``).

    Web threads and workers take a connection per request or message; connecting each
    time costs more than the work (a PostgreSQL connect is a round trip and a fork, and
    closing the last connection to a SQLite WAL database checkpoints it). Pooled
    connections stay open and ``close()`` hands them back; a thread finding the pool
    empty waits up to ``wait_seconds`` instead of failing at once.
    """
    for scheme, pooled in (
        ("postgresql://", "postgresql+pool://"),
        ("postgres://", "postgresql+pool://"),
        ("sqlite:///", "sqlite+pool:///"),
    ):
        if url.startswith(scheme) and ":memory:" not in url:
            sep = "&" if "?" in url else "?"
            return (
                f"{pooled}{url[len(scheme) :]}{sep}max_connections={max_connections}"
                f"&stale_timeout=300&timeout={wait_seconds:g}"
            )
    return url


def open_database(url: str) -> peewee.Database:
    """A peewee database for ``url`` (``sqlite:///path``, ``postgresql://...``, pooled too).

    A SQLite file opens as a :class:`QueuedWritersSqlite` database, a pooled PostgreSQL
    one as a :class:`CheckedPooledPostgresql` database.
    """
    if url.startswith(("postgresql+pool://", "postgres+pool://")):
        return CheckedPooledPostgresql(**parse(url))
    if url.startswith("sqlite") and ":///" in url and ":memory:" not in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        cls = QueuedWritersPooledSqlite if url.startswith("sqlite+pool") else QueuedWritersSqlite
        return cls(**{**parse(url), "pragmas": SQLITE_PRAGMAS, "check_same_thread": False})
    if url.startswith("sqlite"):
        return connect(url, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    return connect(url)


class _WriterQueue:
    """The writers of one SQLite file: an ``flock`` of a file beside it, per thread.

    Each thread locks through its own descriptor (its own open file), so the lock
    orders threads as well as processes, and a thread can always give back what it may
    hold: unlocking a lock one does not hold is harmless. That matters because Dramatiq
    stops an actor past its time limit by raising an exception into its thread at any
    moment, even right after the lock was taken. Re-entrant per thread: statements
    inside a transaction that holds it go straight on. A forked child (gunicorn and
    Dramatiq fork their workers) starts with no descriptors and holds nothing.
    """

    def __init__(self, path: str):
        self.path = path + "-writers.lock"
        self._local = threading.local()
        _writer_queues.add(self)

    def held_here(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def acquire(self) -> None:
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            if getattr(local, "file", None) is None:
                local.file = _LockFile(self.path)
            fd = local.file.fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                local.depth = 1
            except BaseException:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise
        else:
            local.depth = depth + 1

    def release(self, *, fully: bool = False) -> None:
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            return  # e.g. the rollback peewee sends after a failed commit
        local.depth = 0 if fully else depth - 1
        if local.depth == 0:
            fcntl.flock(local.file.fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def forget_after_fork(self) -> None:
        # Drops the forking thread's inherited descriptor (closing it leaves the
        # parent's lock to the parent).
        self._local = threading.local()


class _LockFile:
    """A thread's descriptor of the lock file, closed when the thread's data goes."""

    def __init__(self, path: str):
        # Read-only is enough for flock, and opens whoever created the file.
        self.fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)

    def __del__(self) -> None:
        os.close(self.fd)


_writer_queues: weakref.WeakSet[_WriterQueue] = weakref.WeakSet()


def _forget_writer_locks_after_fork() -> None:
    for queue in list(_writer_queues):
        queue.forget_after_fork()


os.register_at_fork(after_in_child=_forget_writer_locks_after_fork)

#: Statements that never write (a WAL reader needs no lock).
_READS = ("SELECT", "PRAGMA", "EXPLAIN")


class QueuedWritersSqlite(peewee.SqliteDatabase):
    """A SQLite file database whose writers take turns in a queue, not SQLite's busy
    handler.

    SQLite allows one writer at a time. A writer that finds the database locked waits
    in SQLite's busy handler, which sleeps in growing steps (1, 2, 5, 10 ms and more)
    whether or not the lock was freed meanwhile: under load, sub-millisecond writes
    turned into tail latencies of tens of milliseconds. So every write (an autocommit
    statement or a transaction) first takes its turn on an ``flock`` of a file beside
    the database (:class:`_WriterQueue`); the kernel wakes the next writer, thread or
    process, the moment the last one is done. Transactions begin IMMEDIATE (write lock
    taken at BEGIN), because in WAL mode a transaction that read first and wrote later
    fails outright if another writer committed in between. Reads go straight on.
    """

    def init(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().init(database, *args, **kwargs)
        self._writers = _WriterQueue(os.path.abspath(database))

    def begin(self, lock_type: str | None = None) -> None:
        # peewee begins only outermost transactions: a turn this thread still holds
        # was left behind by an interrupted one, not by anything running now.
        self._writers.release(fully=True)
        self._writers.acquire()
        try:
            super().begin("EXCLUSIVE" if lock_type == "EXCLUSIVE" else "IMMEDIATE")
        except BaseException:
            self._writers.release()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._writers.release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._writers.release()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if self._writers.held_here():
            if self.in_transaction():
                return super().execute_sql(sql, params)
            self._writers.release(fully=True)  # left behind by an interrupted write
        if sql.lstrip()[:7].upper().startswith(_READS):
            return super().execute_sql(sql, params)
        with self._writers.held():
            return super().execute_sql(sql, params)


class QueuedWritersPooledSqlite(PooledSqliteDatabase, QueuedWritersSqlite):
    """The same through peewee's connection pool."""


class CheckedPooledPostgresql(PooledPostgresqlDatabase):
    """Peewee's PostgreSQL pool, which checks a connection it hands out only when the
    check can find something.

    Peewee's pool sends ``SELECT 1`` on every checkout, so that a connection the server
    dropped (a restart, an idle timeout) is discarded instead of failing the caller's
    first query. That is a round trip per request, per message and per group commit:
    about four in ten of the api's round trips to PostgreSQL under write load. A
    connection handed back less than :attr:`CHECK_IDLE_SECONDS` ago was working a
    moment ago, so it goes out unchecked, unless the database failed meanwhile: for
    :attr:`CHECK_IDLE_SECONDS` after any query of this pool found the database
    unavailable (a restart drops every pooled connection at once), every checkout is
    checked again. A connection the driver already knows to be broken, or that is
    left inside a transaction, is always handled as peewee does.
    """

    #: A connection idle for longer than this is checked before it is handed out.
    CHECK_IDLE_SECONDS = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._returned_at: dict[int, float] = {}  # connection key -> when handed back
        self._failed_at = float("-inf")  # when a query last found the database down
        super().__init__(*args, **kwargs)

    def _is_closed(self, conn: Any) -> bool:
        returned_at = self._returned_at.pop(self.conn_key(conn), None)
        now = time.monotonic()
        if (
            returned_at is not None
            and now - returned_at < self.CHECK_IDLE_SECONDS
            and now - self._failed_at >= self.CHECK_IDLE_SECONDS
            and not conn.closed
            and self._adapter.txn_status(conn) == self._adapter.txn_idle
        ):
            return False
        return super()._is_closed(conn)

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        super()._close(conn, close_conn)
        if not close_conn and not conn.closed:  # back in the pool
            self._returned_at[self.conn_key(conn)] = time.monotonic()

    def close_idle(self) -> None:
        super().close_idle()
        self._returned_at.clear()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        try:
            return super().execute_sql(sql, params)
        except Exception as exc:
            if is_database_unavailable(exc):
                self._failed_at = time.monotonic()
            raise


#: SQLite errors that say the file cannot be used for now, not that a query is wrong
#: ("no such table" is an OperationalError too, and is a bug or a missing migration).
_SQLITE_UNAVAILABLE = (
    "unable to open",
    "disk i/o error",
    "database is locked",
    "readonly database",
)


def wait_for_database(db: peewee.Database, seconds: float, clock=None, sleep=None) -> None:
    """Connect to ``db``, retrying for up to ``seconds`` while it is unavailable (still
    starting, refusing connections); then raise the last error. ``migrate --wait``."""
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    deadline = clock() + seconds
    while True:
        try:
            db.connect(reuse_if_open=True)
            db.execute_sql("SELECT 1")
            return
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            if clock() >= deadline:
                raise
            log.warning("database not answering yet (%s); retrying", str(exc).strip())
            if not db.is_closed():
                db.close()
            sleep(1.0)


def is_database_unavailable(exc: BaseException | None) -> bool:
    """``exc`` (or what caused it) says the database is unreachable or unusable for now
    (down, restarting, refusing connections, out of pooled connections), as opposed to
    an error of a query or its data, which waiting would not fix."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, peewee.InterfaceError | MaxConnectionsExceeded):
            return True
        # peewee raises its own error while handling the driver's (its __context__).
        if isinstance(exc, sqlite3.Error):
            text = str(exc).lower()
            return isinstance(exc, sqlite3.OperationalError) and any(
                reason in text for reason in _SQLITE_UNAVAILABLE
            )
        if isinstance(exc, psycopg2.Error):
            # No SQLSTATE: libpq could not connect, or lost the connection. Otherwise the
            # server's code says: connection exceptions (08), insufficient resources
            # (53: too many connections, disk full), shutting down or starting (57P0x),
            # system errors (58). Timeouts, deadlocks and data limits are the query's own.
            code = exc.pgcode
            if code is None:  # raised by the client library itself
                return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)
            return code[:2] in ("08", "53", "58") or code[:4] == "57P0"
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def is_postgres(db: peewee.Database) -> bool:
    return isinstance(db, peewee.PostgresqlDatabase)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class FalconConnectionScope:
    """Falcon middleware: a request's database connection goes back when it is answered.

    The connection itself is opened by the request's first query (peewee connects on
    first use), so a request that never queries (probes, static pages, a create that
    the group commit writes) never takes one from the pool.
    """

    def __init__(self, db: peewee.Database | peewee.DatabaseProxy):
        self.db = db

    def process_response(self, req, resp, resource, req_succeeded):
        if not self.db.is_closed():
            self.db.close()


class DramatiqConnectionScope(Middleware):
    """Dramatiq middleware: one database connection per message, closed however it ends."""

    def __init__(self, db: peewee.Database | peewee.DatabaseProxy):
        self.db = db

    def before_process_message(self, broker, message):
        self.db.connect(reuse_if_open=True)

    def _close(self, *args, **kwargs):
        if not self.db.is_closed():
            self.db.close()

    after_process_message = _close
    after_skip_message = _close


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    """One schema change of one service. ``apply`` gets the database and a playhouse
    SchemaMigrator. Versions are the service's own: each service keeps its history
    apart, so two services may share one database (one ``DATABASE_URL``)."""

    version: int
    name: str
    apply: Callable[[peewee.Database, SchemaMigrator], None]
    service: str


#: Arbitrary constant naming the advisory lock migration runners share.
MIGRATION_LOCK_KEY = 727_100_001
#: Where each service's applied versions are kept, by (service, version).
HISTORY_TABLE = "schema_history"
#: The history of earlier releases: one service's versions, without the service.
LEGACY_HISTORY_TABLE = "schema_migrations"


class MigrationError(RuntimeError):
    pass


class SchemaNotCurrent(MigrationError):
    """The database is behind the code; the service must not start on it."""


def _history_model(db: peewee.Database) -> Any:
    class SchemaHistory(peewee.Model):
        service = peewee.CharField(max_length=64)
        version = peewee.IntegerField()
        name = peewee.CharField()
        applied_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = HISTORY_TABLE
            primary_key = peewee.CompositeKey("service", "version")

    return SchemaHistory


def service_of(migrations: Sequence[Migration]) -> str:
    """The one service ``migrations`` belong to."""
    services = {m.service for m in migrations}
    if len(services) != 1:
        raise MigrationError(f"migrations of one service expected, got {sorted(services)}")
    return services.pop()


def applied_versions(db: peewee.Database, service: str) -> set[int]:
    history = _history_model(db)
    if not history.table_exists():
        return set()
    query = history.select(history.version).where(history.service == service)
    return {version for (version,) in query.tuples()}


def _adopt_legacy_history(db: peewee.Database, history: Any, migrations: Sequence[Migration]):
    """Carry a database migrated by an earlier release into the per-service history.

    The old table named versions without their service. A row is this service's when
    its version and name are one of this service's migrations: the services' version
    numbers overlap, their names do not. (A database both services once shared thus
    gives each its own rows, and whatever the other's rows hid runs now.)
    """
    service = service_of(migrations)
    if applied_versions(db, service) or LEGACY_HISTORY_TABLE not in db.get_tables():
        return
    cursor = db.execute_sql(f"SELECT version, name FROM {LEGACY_HISTORY_TABLE}")  # noqa: S608
    ours = {(m.version, m.name) for m in migrations}
    adopted = [(version, name) for version, name in cursor.fetchall() if (version, name) in ours]
    for version, name in adopted:
        history.create(service=service, version=version, name=name)
    if adopted:
        log.info("adopted %s's versions %s from %s", service, adopted, LEGACY_HISTORY_TABLE)


def migrate(db: peewee.Database, migrations: Sequence[Migration]) -> list[Migration]:
    """Apply the migrations not yet applied, each in its own transaction, in order.

    On PostgreSQL a session advisory lock serializes concurrent runners (several pods
    starting at once); SQLite's write lock does the same for a file.
    """
    postgres = is_postgres(db)
    if postgres:
        db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        service = service_of(migrations)
        history = _history_model(db)
        history.create_table(safe=True)
        with db.atomic():
            _adopt_legacy_history(db, history, migrations)
        done = applied_versions(db, service)
        applied = []
        migrator = SchemaMigrator.from_database(db)
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            with db.atomic():
                migration.apply(db, migrator)
                history.create(service=service, version=migration.version, name=migration.name)
            log.info("applied migration %s %s", migration.version, migration.name)
            applied.append(migration)
        return applied
    finally:
        if postgres:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def check_current(db: peewee.Database, migrations: Sequence[Migration]) -> None:
    """Raise :class:`SchemaNotCurrent` with the command to run if anything is pending."""
    service = service_of(migrations)
    pending = sorted({m.version for m in migrations} - applied_versions(db, service))
    if pending:
        raise SchemaNotCurrent(
            f"the {service} database is not migrated (pending: {pending}); "
            f"run `python -m {service} migrate` first"
        )
