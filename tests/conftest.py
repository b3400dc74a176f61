"""Fixtures for real Redis and real databases.

Every test gets its own Redis key namespace (broker queues, job records, results), so
tests never see each other's messages; databases are SQLite files in a tmp dir, or
fresh PostgreSQL databases when ``TEST_DATABASE=postgres`` (the tox ``postgres`` env).
A test that needs Redis or PostgreSQL and cannot reach it fails; it never skips.

None of these fixtures is autouse: a test gets Redis or a database only by asking for
one. Each test is marked with its layer at collection (:func:`layer_of`), so ``-m unit``
or ``-m "not system"`` picks a lane.
"""

from __future__ import annotations

import contextlib
import os
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

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


TESTS_DIR = Path(__file__).resolve().parent
#: The layers of the suite, one marker each (``pytest -m unit``, ``-m "not system"``).
LAYERS = {
    "unit": "pure logic in tests/unit: no Redis, no database, no other process",
    "service": "real Redis and a real database, in the test process",
    "system": "starts real processes (services, workers, scheduler, relay, commands)",
    "contract": "tests/contract: what the system relies on in its libraries and Redis",
}
#: Fixtures that reach Redis or a database: a unit test may not use them.
HEAVY_FIXTURES = frozenset({"redis_url", "make_database_url"})
#: Names whose use in a test or one of its fixtures means it starts real processes.
PROCESS_NAMES = frozenset({"ServiceProcess", "System", "subprocess", "python_module"})


def _names(code: types.CodeType) -> set[str]:
    """The global and attribute names a function refers to, nested functions included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _refers_to_processes(func: object, seen: set[object]) -> bool:
    """Whether ``func``, or a helper function of the suite it calls, names a process
    starter."""
    code = getattr(func, "__code__", None)
    if code is None or func in seen:
        return False
    seen.add(func)
    names = _names(code)
    if PROCESS_NAMES & names:
        return True
    module_globals = getattr(func, "__globals__", {})
    return any(
        _refers_to_processes(helper, seen)
        for helper in (module_globals.get(name) for name in names)
        if isinstance(helper, types.FunctionType) and helper.__module__.startswith("tests.")
    )


def _starts_processes(item: pytest.Item) -> bool:
    functions = [getattr(item, "function", None)]
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    if fixtureinfo is not None:
        # The last definition of a name is the one the test gets (a module's own
        # fixture overrides a conftest's of the same name).
        functions += [defs[-1].func for defs in fixtureinfo.name2fixturedefs.values() if defs]
    seen: set[object] = set()
    return any(_refers_to_processes(func, seen) for func in functions)


def layer_of(item: pytest.Item) -> str:
    """unit (tests/unit), contract (tests/contract), system (starts real processes:
    marked e2e, or it or a fixture of it uses ServiceProcess, System or subprocess),
    otherwise service (real Redis and a real database, in this process)."""
    path = Path(str(item.path)).resolve()
    folder = path.relative_to(TESTS_DIR).parts[0] if path.is_relative_to(TESTS_DIR) else ""
    if folder in ("unit", "contract"):
        return folder
    if item.get_closest_marker("e2e") or _starts_processes(item):
        return "system"
    return "service"


def pytest_configure(config: pytest.Config) -> None:
    for name, description in LAYERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced = []
    for item in items:
        layer = layer_of(item)
        item.add_marker(getattr(pytest.mark, layer))
        if layer == "unit" and HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError(
            "unit tests may not use Redis or a database (move them out of tests/unit): "
            + ", ".join(misplaced)
        )


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
