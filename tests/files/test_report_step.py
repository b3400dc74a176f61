"""The ``generate_report`` step: validated at save, run by a scheduled workflow, the
report stored and its recipients told where it is."""

from __future__ import annotations

from datetime import datetime, timedelta

import falcon.testing
import pytest

from tests.files.conftest import TENANT, add_policy, auth
from workflow_service.app import Deps, create_app
from workflow_service.db import database
from workflow_service.models import Execution, Notification, StepRun
from workflow_service.runtime import build_engine
from workflow_service.scheduler import ScheduledWorkflows, SchedulerContext
from workflow_service.storage import StoredFile
from workflow_service.users.directory import save_user

EDITOR = auth("olivia", ["editor"])


@pytest.fixture
def engine(settings, workflow_db, redis_client, outbox, api):
    with workflow_db.connection_context():
        save_user(TENANT, "olivia", email="olivia@example.org", roles=["editor"])
        save_user(TENANT, "audrey", email="audrey@example.org", roles=["auditor"])
    return build_engine(settings, database, outbox, redis_client, api=api)


@pytest.fixture
def web(settings, workflow_db, redis_client, outbox, engine):
    app = create_app(
        settings, Deps(db=workflow_db, broker=outbox, redis=redis_client, engine=engine)
    )
    return falcon.testing.TestClient(app)


def _workflow(step: dict, **overrides) -> dict:
    return {
        "name": "Weekly overdue reviews",
        "entity_type": "policy",
        "trigger": "scheduled",
        "trigger_config": {"cron": "0 7 * * 1", "entity_id": "reports"},
        "status": "active",
        "steps": [step],
        **overrides,
    }


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"format": "pdf", "filters": {"within_days": "soon"}}, "steps.0.filters"),
        ({"filters": {"colour": "red"}}, "steps.0"),
        ({"format": "docx"}, "steps.0.format"),
        ({"recipients": ["team:x"]}, "steps.0.recipients.0"),
        ({"recipients": []}, "steps.0.recipients"),
        ({"channels": ["webhook"]}, "steps.0.channels"),
        ({"subject": "{{ nope"}, "steps.0.subject"),
        ({"report": "everything"}, "steps.0.report"),
    ],
)
def test_bad_options_are_refused_when_the_workflow_is_saved(web, options, field):
    step = {"kind": "generate_report", "report": "overdue_reviews", "recipients": ["role:auditor"]}
    answer = web.simulate_post("/workflows", json=_workflow({**step, **options}), headers=EDITOR)
    assert answer.status_code == 422, answer.text
    fields = [e["field"] for e in answer.json["errors"]]
    assert any(f.startswith(field) for f in fields), fields


def test_a_scheduled_report_is_stored_and_its_recipients_told(
    web, engine, outbox, api_app, settings, workflow_db
):
    today = datetime.utcnow().date()
    add_policy(api_app, title="Late review", next_review_date=str(today - timedelta(days=2)))
    step = {
        "kind": "generate_report",
        "report": "overdue_reviews",
        "format": "pdf",
        "filters": {"within_days": 7},
        "recipients": ["role:auditor", "user:olivia"],
        "channels": ["in_app", "email"],
    }
    created = web.simulate_post("/workflows", json=_workflow(step), headers=EDITOR)
    assert created.status_code == 201, created.text
    workflow_id = created.json["id"]

    # When: the scheduler fires the workflow and a worker runs the execution.
    scheduled = ScheduledWorkflows(None, SchedulerContext(settings, engine, lock=None))
    execution = scheduled.fire(workflow_id, datetime(2026, 3, 2, 7, 0))
    for message in outbox.messages:
        if message.actor_name == "run_execution":
            engine.run(message.args[0])
    with workflow_db.connection_context():
        execution = Execution.get_by_id(execution.id)
        assert execution.status == "completed", execution.error
        [file] = list(StoredFile.select())
        assert (file.kind, file.tenant_id) == ("report", TENANT)
        assert file.name.startswith("overdue_reviews-") and file.name.endswith(".pdf")
        report_run = StepRun.get((StepRun.execution == execution.id) & (StepRun.key == "0"))
        assert report_run.output["file"]["file_id"] == file.id
        assert report_run.output["file"]["rows"] == 1
        notices = list(Notification.select().where(Notification.execution == execution.id))
        assert sorted(n.recipient for n in notices) == ["audrey", "olivia"]
        assert all(f"/files/{file.id}" in n.body for n in notices)
        assert all(n.subject == f"Report ready: {file.name}" for n in notices)

    # Then: the auditor downloads it through the link.
    download = web.simulate_get(f"/files/{file.id}", headers=auth("audrey", ["auditor"]))
    assert download.status_code == 200
    assert download.content.startswith(b"%PDF")
