"""Fixtures of the approval tests: a migrated database, the admin app, an engine that
runs executions in the test process, and a directory of people."""

from __future__ import annotations

from collections.abc import Iterator

import falcon.testing
import httpx
import pytest
import redis

from shared.auth import issue_token
from shared.db import migrate
from tests.conftest import JWT_SECRET
from workflow_service.app import Deps, create_app
from workflow_service.db import database, init_database
from workflow_service.features import install
from workflow_service.migrations import all_migrations
from workflow_service.settings import WorkflowSettings
from workflow_service.users.directory import save_user

install()

TENANT = "acme"
PEOPLE = {
    # id: (roles, e-mail)
    "olivia": (["editor", "approver"], "olivia@example.org"),  # owns the policies
    "alice": (["approver"], "alice@example.org"),
    "bob": (["approver"], "bob@example.org"),
    "carol": (["approver"], "carol@example.org"),
    "dave": (["viewer"], "dave@example.org"),
    "root": (["admin"], "root@example.org"),
}


def auth(sub: str, roles=None, tenant: str = TENANT) -> dict[str, str]:
    roles = roles if roles is not None else PEOPLE.get(sub, (["viewer"], None))[0]
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, sub, list(roles), tenant)}"}


class Outbox:
    """A broker that keeps what is sent, so the test decides when to run it."""

    def __init__(self):
        self.messages = []
        self.down = False  # True: behave like a broker whose Redis is unreachable

    def enqueue(self, message, *, delay=None):
        if self.down:
            raise redis.ConnectionError("Redis is down (simulated)")
        self.messages.append(message)
        return message

    def take(self, actor_name: str) -> list:
        taken = [m for m in self.messages if m.actor_name == actor_name]
        self.messages = [m for m in self.messages if m.actor_name != actor_name]
        return taken


@pytest.fixture
def workflow_db(make_database_url) -> Iterator:
    db = init_database(make_database_url("appr"))
    migrate(db, all_migrations())
    with db.connection_context():
        for user_id, (roles, email) in PEOPLE.items():
            save_user(TENANT, user_id, name=user_id.title(), email=email, roles=roles)
    yield db
    db.close()


@pytest.fixture
def settings(workflow_db, redis_url, namespace) -> WorkflowSettings:
    return WorkflowSettings(
        redis_url=redis_url,
        namespace=namespace,
        database_url="unused: bound by the workflow_db fixture",
        jwt_secret=JWT_SECRET,
    )


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


class AnyPolicyApi:
    """The api as manual runs see it: every policy exists, with no fields of its own
    (the run's data supplies them); anything but reading a policy cannot reach it."""

    def request(self, method, path, tenant_id, **kwargs):
        if method != "GET":
            raise httpx.ConnectError("no api in these tests")
        return httpx.Response(200, json={"id": path.rsplit("/", 1)[-1]})

    def close(self) -> None:
        pass


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
