"""Fixtures of the workflow service tests: a migrated database, an engine, a web client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shared.db import migrate
from workflow_service.db import database, init_database
from workflow_service.features import install
from workflow_service.migrations import all_migrations
from workflow_service.settings import WorkflowSettings

install(["tests.workflow.plugin_steps"])


class Outbox:
    """Collects what the engine sends, like a broker that never delivers."""

    def __init__(self):
        self.messages = []

    def enqueue(self, message, *, delay=None):
        self.messages.append(message)
        return message


@pytest.fixture
def workflow_db(make_database_url) -> Iterator:
    db = init_database(make_database_url("wf"))
    migrate(db, all_migrations())
    yield db
    db.close()


@pytest.fixture
def settings(workflow_db, redis_url, namespace) -> WorkflowSettings:
    return WorkflowSettings(
        redis_url=redis_url,
        namespace=namespace,
        database_url="unused: bound by the workflow_db fixture",
        jwt_secret="test-secret-for-the-suite-only-0123456789",
    )


@pytest.fixture
def engine(settings, redis_client: redis.Redis):
    from workflow_service.runtime import build_engine

    outbox = Outbox()
    eng = build_engine(settings, database, outbox, redis_client)
    eng.outbox = outbox
    yield eng
    eng.api.close()


class PolicyApi:
    """The policy api as the workflow service sees it: the policies it holds (by id,
    any tenant), and the requests made of it. Unknown ids are a 404."""

    def __init__(self, policies: dict[str, dict] | None = None):
        self.policies = dict(policies or {})
        self.requests: list[tuple[str, str, str]] = []

    def add(self, policy_id: str, **fields) -> dict:
        policy = {
            "id": policy_id,
            "tenant": "acme",
            "title": "Access control",
            "owner": "olivia",
            "status": "draft",
            "version": 1,
            "created_by": "olivia",
            "submitted_by": None,
            "content": "long text",
            **fields,
        }
        self.policies[policy_id] = policy
        return policy

    def request(self, method, path, tenant_id, *, json=None, headers=None, **kwargs):
        import httpx

        self.requests.append((method, path, tenant_id))
        policy_id = path.split("/")[2]
        policy = self.policies.get(policy_id)
        if policy is None:
            return httpx.Response(404, json={"title": "Policy not found"})
        if method == "GET":
            return httpx.Response(200, json=policy)
        return httpx.Response(200, json={"status": (json or {}).get("to"), "version": 2})

    def close(self) -> None:
        pass
