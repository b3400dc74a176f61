"""Fixtures of the audit tests: a migrated database, the admin app with a broker that
keeps what is sent, and an engine that runs executions in the test process."""

from __future__ import annotations

from collections.abc import Iterator

import falcon.testing
import pytest

from shared.db import migrate
from tests.approvals.conftest import AnyPolicyApi, Outbox, auth  # noqa: F401 - shared helpers
from tests.conftest import JWT_SECRET
from workflow_service.app import Deps, create_app
from workflow_service.audit import chain
from workflow_service.db import database, init_database
from workflow_service.features import install
from workflow_service.migrations import all_migrations
from workflow_service.settings import WorkflowSettings

install()

TENANT = "acme"


@pytest.fixture
def workflow_db(make_database_url) -> Iterator:
    db = init_database(make_database_url("audit"))
    migrate(db, all_migrations())
    yield db
    db.close()


@pytest.fixture
def settings(workflow_db, redis_url, namespace, tmp_path) -> WorkflowSettings:
    return WorkflowSettings(
        redis_url=redis_url,
        namespace=namespace,
        database_url="unused: bound by the workflow_db fixture",
        jwt_secret=JWT_SECRET,
        files_dir=tmp_path / "files",
    )


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def engine(settings, workflow_db, redis_client, outbox):
    from workflow_service.runtime import build_engine

    eng = build_engine(settings, database, outbox, redis_client, api=AnyPolicyApi())
    yield eng
    eng.api.close()


@pytest.fixture
def client(settings, workflow_db, redis_client, outbox, engine):
    app = create_app(
        settings, Deps(db=workflow_db, broker=outbox, redis=redis_client, engine=engine)
    )
    return falcon.testing.TestClient(app)


def chain_all(tenant: str = TENANT) -> int:
    """Run the chain builder as the append_audit actor would."""
    with database.connection_context():
        return chain.append(database, tenant)
