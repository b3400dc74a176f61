"""A pooled PostgreSQL connection is checked when it may have gone, and only then.

Peewee's pool would send ``SELECT 1`` before handing out any connection;
``shared.db.CheckedPooledPostgresql`` skips that for a connection handed back a
moment ago, and checks again once a query found the database down or the connection
sat idle. These tests drop the pool's connections on the server (as a restart does)
and see what the next caller gets.
"""

from __future__ import annotations

import threading

import peewee
import psycopg2
import pytest
from psycopg2.extras import LoggingConnection

from shared.db import CheckedPooledPostgresql, is_database_unavailable, open_database, pooled_url
from tests.conftest import TEST_DATABASE, _postgres_admin

pytestmark = pytest.mark.skipif(
    TEST_DATABASE != "postgres", reason="PostgreSQL's pool (TEST_DATABASE=postgres)"
)


class _Statements:
    """A psycopg2 LoggingConnection's log: keeps the statements the pool's connections ran."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def write(self, text: str) -> None:
        self.sent.append(text.strip())


class _LoggedPool(CheckedPooledPostgresql):
    """The pool under test, its connections logging what they send."""

    def __init__(self, *args, **kwargs) -> None:
        self.statements = _Statements()
        super().__init__(*args, connection_factory=LoggingConnection, **kwargs)

    def _initialize_connection(self, conn) -> None:
        conn.initialize(self.statements)
        super()._initialize_connection(conn)


@pytest.fixture
def pool(make_database_url):
    db = open_database(pooled_url(make_database_url("pool"), 4))
    assert isinstance(db, CheckedPooledPostgresql)
    logged = _LoggedPool(db.database, **db.connect_params)
    yield logged
    logged.close_all()


def backends(db: peewee.Database) -> list[int]:
    admin = _postgres_admin()
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (db.database,),
        )
        pids = [pid for (pid,) in cur.fetchall()]
    admin.close()
    return pids


def drop_connections(db: peewee.Database) -> None:
    """What a database restart does to the pool: every server connection goes."""
    admin = _postgres_admin()
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (db.database,),
        )
    admin.close()


def query(db: peewee.Database) -> int:
    with db.connection_context():
        return db.execute_sql("SELECT 40 + 2").fetchone()[0]


def test_a_connection_handed_back_a_moment_ago_goes_out_unchecked(pool):
    # Given a connection that answered and went back to the pool
    query(pool)
    pool.statements.sent.clear()
    # When it is taken again at once, then again
    query(pool)
    query(pool)
    # Then only the callers' queries went to the server, no checks
    assert pool.statements.sent == ["SELECT 40 + 2", "SELECT 40 + 2"]
    assert len(backends(pool)) == 1


def test_an_idle_connection_the_server_dropped_is_replaced_before_anyone_uses_it(pool):
    pool.CHECK_IDLE_SECONDS = 0.0  # every pooled connection counts as idle
    query(pool)
    (first,) = backends(pool)
    drop_connections(pool)
    # The caller never sees the dead connection: the check finds it and a new one is made
    assert query(pool) == 42
    assert "SELECT 1" in pool.statements.sent
    assert backends(pool) not in ([], [first])


def test_after_a_query_found_the_database_down_every_connection_is_checked(pool):
    # Given two connections handed back a moment ago (so not checked on their own)
    with pool.connection_context():
        pool.execute_sql("SELECT 1")
        other = threading.Thread(target=query, args=(pool,))
        other.start()
        other.join()
    assert len(backends(pool)) == 2
    # When the server drops them (a restart) and a caller gets one of them
    drop_connections(pool)
    with pytest.raises(peewee.DatabaseError) as failed:
        query(pool)
    assert is_database_unavailable(failed.value)
    # Then that caller alone fails: the next one is checked and gets a working connection
    pool.statements.sent.clear()
    assert query(pool) == 42
    assert pool.statements.sent[0] == "SELECT 1"


def test_a_connection_handed_back_inside_a_transaction_goes_out_without_it(pool):
    with pool.connection_context():
        pool.execute_sql("BEGIN")
        pool.execute_sql("SELECT 1")
        idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
        assert pool.connection().get_transaction_status() != idle
    with pool.connection_context():
        assert pool.connection().get_transaction_status() == idle
