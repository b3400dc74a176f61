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
