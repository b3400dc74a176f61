"""A migrated workflow database with one execution to hang deliveries on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.db import migrate
from workflow_service.db import init_database
from workflow_service.migrations import all_migrations
from workflow_service.models import Execution, Workflow


@pytest.fixture
def workflow_db(make_database_url) -> Iterator:
    db = init_database(make_database_url("notif"))
    migrate(db, all_migrations())
    yield db
    db.close()


@pytest.fixture
def execution(workflow_db) -> Execution:
    workflow = Workflow.create(
        tenant_id="acme",
        name="w",
        entity_type="policy",
        trigger="manual",
        steps=[],
        created_by="t",
        updated_by="t",
    )
    return Execution.create(
        tenant_id="acme",
        workflow=workflow,
        workflow_version=1,
        event_id="e-1",
        event={},
        entity_type="policy",
        entity_id="p-1",
        job_id="j-1",
    )


@pytest.fixture
def restore_network_policy() -> Iterator[None]:
    """Apps set the process's webhook network policy; put it back afterwards."""
    from workflow_service.steps import webhook_urls

    before = webhook_urls.POLICY.allow_private
    yield
    webhook_urls.configure(allow_private=before)


@pytest.fixture
def make_web(workflow_db, redis_client, redis_url, namespace, restore_network_policy):
    """``make_web(**notification_settings)``: the admin web through falcon's TestClient."""
    import dataclasses

    import falcon.testing

    from tests.conftest import JWT_SECRET
    from tests.workflow.conftest import Outbox
    from workflow_service.app import Deps, create_app
    from workflow_service.settings import NotificationSettings, WorkflowSettings

    def make(**notifications):
        settings = WorkflowSettings(
            redis_url=redis_url,
            namespace=namespace,
            database_url="unused: bound by the workflow_db fixture",
            jwt_secret=JWT_SECRET,
        )
        base = {"webhook_secret": "master-key-of-the-notification-tests-0123456789"}
        settings = dataclasses.replace(
            settings, notifications=NotificationSettings(**{**base, **notifications})
        )
        app = create_app(settings, Deps(db=workflow_db, broker=Outbox(), redis=redis_client))
        client = falcon.testing.TestClient(app)
        client.app_settings = settings.notifications  # type: ignore[attr-defined]
        return client

    return make


def auth(sub: str = "erin", roles=("editor",), tenant: str = "acme") -> dict[str, str]:
    from shared.auth import issue_token
    from tests.conftest import JWT_SECRET

    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, sub, list(roles), tenant)}"}
