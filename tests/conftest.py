"""Fixtures for real Redis and real databases.

Every test gets its own Redis key namespace (broker queues, job records, results), so
tests never see each other's messages; databases are SQLite files in a tmp dir, or
fresh PostgreSQL databases when ``TEST_DATABASE=postgres`` (the tox ``postgres`` env).
A test that needs Redis or PostgreSQL and cannot reach it fails; it never skips.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
JWT_SECRET = "test-secret-for-the-suite-only-0123456789"
#: Signs service tokens (the workflow service acting on the api): never JWT_SECRET.
SERVICE_TOKEN_SECRET = "test-service-token-secret-for-the-suite-0123"
# The suite runs in development mode (production refuses to start without real
# secrets); processes it starts inherit this. Production tests pass APP_ENV themselves.
os.environ["APP_ENV"] = "development"


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc} (run the suite with make test)")
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    ns = f"t-{uuid.uuid4().hex[:12]}"
    yield ns
    for pattern in (f"{ns}:*", f"{ns}-*", f"{ns}.*"):
        keys = list(redis_client.scan_iter(match=pattern, count=1000))
        if keys:
            redis_client.delete(*keys)


@pytest.fixture
def common_env(redis_url: str, namespace: str) -> dict[str, str]:
    """Environment every process of the system under test shares."""
    return {
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": namespace,
        "JWT_SECRET": JWT_SECRET,
        "SERVICE_TOKEN_SECRET": SERVICE_TOKEN_SECRET,
    }


def _postgres_admin():
    import psycopg2

    try:
        conn = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def database_outage(url: str) -> Iterator[None]:
    """Within: the database at ``url`` refuses every new connection, as a database that
    is down does (PostgreSQL also drops the open ones); after: it serves again.

    SQLite: the file is moved aside and a directory takes its place, so opening it
    fails ("unable to open database file"). PostgreSQL: the database stops accepting
    connections ("is not currently accepting connections").
    """
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1].split("?", 1)[0]
        os.rename(path, path + ".away")
        os.mkdir(path)
        try:
            yield
        finally:
            os.rmdir(path)
            os.rename(path + ".away", path)
        return
    name = url.rsplit("/", 1)[1]
    conn = _postgres_admin()
    with conn.cursor() as cur:
        cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        conn.close()


@pytest.fixture(scope="session")
def make_database_url(tmp_path_factory) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh, empty database URL for a label (SQLite file or PostgreSQL db)."""
    created: list[str] = []

    def make(label: str) -> str:
        name = f"gw_{label}_{uuid.uuid4().hex[:10]}"
        if TEST_DATABASE == "postgres":
            conn = _postgres_admin()
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
            conn.close()
            created.append(name)
            base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
            return f"{base}/{name}"
        return f"sqlite:///{tmp_path_factory.mktemp('db') / (name + '.db')}"

    yield make
    if created:
        conn = _postgres_admin()
        with conn.cursor() as cur:
            for name in created:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
