"""The ``assign`` step: it assigns through the api's assignment endpoint, once, and tells
the assignee. What a workflow naming people or statuses of assessments and evidence may
say is checked at save (tests/unit/test_entity_workflow_definitions.py)."""

from __future__ import annotations

import httpx
import pytest

from shared.events import CAUSATION_HEADER, INITIATOR_HEADER, Event
from workflow_service.db import database
from workflow_service.definitions import validate_definition
from workflow_service.models import Execution, Notification, StepRun
from workflow_service.runtime import build_engine, cache_invalidator
from workflow_service.workflows import WorkflowStore


class AssigningApi:
    """The api's assignment endpoint as the workflow service sees it: it keeps one
    answer per Idempotency-Key, as the api does. ``lose_answers``: how many first
    answers are lost after the assignment was made (the step sees a connection error)."""

    def __init__(self, lose_answers: int = 0, status: int = 200):
        self.lose_answers = lose_answers
        self.status = status
        self.calls: list[dict] = []
        self.assignments: list[tuple[str, str]] = []  # (path, assignee)
        self._answers: dict[str, httpx.Response] = {}

    def request(self, method, path, tenant_id, *, json=None, headers=None, **kwargs):
        self.calls.append(
            {"method": method, "path": path, "tenant": tenant_id, "json": json, **headers}
        )
        key = headers["Idempotency-Key"]
        if key not in self._answers:
            if self.status != 200:
                return httpx.Response(self.status, json={"title": "No", "description": "nope"})
            self.assignments.append((path, json["assignee"]))
            self._answers[key] = httpx.Response(
                200, json={"assignee": json["assignee"], "version": len(self.assignments) + 1}
            )
        if self.lose_answers:
            self.lose_answers -= 1
            raise httpx.ReadTimeout("answer lost")
        return self._answers[key]

    def close(self) -> None:
        pass


@pytest.fixture
def store(workflow_db, redis_client, namespace):
    return WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))


def make_engine(settings, redis_client, api):
    from tests.workflow.conftest import Outbox

    outbox = Outbox()
    engine = build_engine(settings, database, outbox, redis_client, api=api)
    engine.outbox = outbox
    return engine


def assessment_event(**data) -> Event:
    return Event(
        event_type="assessment.status_changed",
        entity_type="assessment",
        entity_id="a-1",
        tenant_id="acme",
        actor="ed",
        data={"title": "Q3 access review", "status": "in_progress", "assessor": "amy", **data},
    )


def workflow(store, steps, entity_type="assessment", trigger="on_status_change"):
    definition = {
        "name": "assign it",
        "entity_type": entity_type,
        "trigger": trigger,
        "steps": steps,
    }
    return store.create("acme", "alice", validate_definition(definition), "active")


def test_assign_calls_the_assignment_endpoint_and_tells_the_assignee(settings, redis_client, store):
    # Given: a workflow assigning the assessment to dave
    api = AssigningApi()
    engine = make_engine(settings, redis_client, api)
    workflow(store, [{"kind": "assign", "assignee": "user:dave", "comment": "Take it over"}])
    event = assessment_event()
    # When: an assessment event runs it
    [execution] = engine.dispatch(event)
    assert engine.run(execution.id) == "completed"
    # Then: one POST to the assessment's assignment, with the key, causation and initiator
    [call] = api.calls
    assert (call["method"], call["path"], call["tenant"]) == (
        "POST",
        "/assessments/a-1/assignment",
        "acme",
    )
    assert call["json"] == {"assignee": "dave", "comment": "Take it over"}
    assert call[CAUSATION_HEADER] == event.event_id
    assert call[INITIATOR_HEADER] == "ed"
    assert len(call["Idempotency-Key"]) == 64
    # And dave has an in-app message about it
    [note] = Notification.select().where(Notification.execution == execution.id)
    assert note.recipient == "dave"
    assert note.subject == "You were assigned assessment Q3 access review"
    [run] = StepRun.select().where(StepRun.execution == execution.id)
    assert run.output["assignee"] == "dave" and run.output["version"] == 2


def test_a_retried_assign_assigns_once_and_tells_once(settings, redis_client, store):
    # Given: the api makes the assignment but its answer is lost, once
    api = AssigningApi(lose_answers=1)
    engine = make_engine(settings, redis_client, api)
    workflow(store, [{"kind": "assign", "assignee": "owner"}])
    [execution] = engine.dispatch(assessment_event())
    # When: the step fails for the lost answer, and its retry runs
    with pytest.raises(Exception, match="ReadTimeout"):
        engine.run(execution.id)
    assert Execution.get_by_id(execution.id).status == "pending"
    assert engine.run(execution.id) == "completed"
    # And the run message comes again
    assert engine.run(execution.id) == "completed"
    # Then: both attempts sent the same key, and the api assigned once
    assert len(api.calls) == 2
    assert api.calls[0]["Idempotency-Key"] == api.calls[1]["Idempotency-Key"]
    assert api.assignments == [("/assessments/a-1/assignment", "amy")]  # owner: the assessor
    # And the assessor was told once
    notes = Notification.select().where(Notification.execution == execution.id)
    assert [n.recipient for n in notes] == ["amy"]


def test_the_assignee_is_emailed_once_when_the_directory_has_their_address(
    settings, redis_client, store
):
    from workflow_service.notifications.delivery import DELIVER_ACTOR
    from workflow_service.notifications.models import Delivery
    from workflow_service.users.directory import save_user

    # Given: dave in the directory with an address; the first answer of the api is lost
    save_user("acme", "dave", name="Dave", email="dave@example.org", roles=["editor"])
    api = AssigningApi(lose_answers=1)
    engine = make_engine(settings, redis_client, api)
    workflow(store, [{"kind": "assign", "assignee": "user:dave"}])
    [execution] = engine.dispatch(assessment_event())
    # When: the step is retried after the lost answer
    with pytest.raises(Exception, match="ReadTimeout"):
        engine.run(execution.id)
    assert engine.run(execution.id) == "completed"
    # Then: one e-mail planned for dave, and its delivery message sent
    [mail] = Delivery.select().where(Delivery.execution == execution.id)
    assert (mail.channel, mail.address) == ("email", "dave@example.org")
    assert mail.subject == "You were assigned assessment Q3 access review"
    sent = [m for m in engine.outbox.messages if m.actor_name == DELIVER_ACTOR]
    assert [m.args[0] for m in sent] == [mail.id]


def test_in_app_only_tells_no_one_by_email(settings, redis_client, store):
    from workflow_service.notifications.models import Delivery
    from workflow_service.users.directory import save_user

    save_user("acme", "dave", name="Dave", email="dave@example.org", roles=["editor"])
    engine = make_engine(settings, redis_client, AssigningApi())
    workflow(store, [{"kind": "assign", "assignee": "user:dave", "notify": ["in_app"]}])
    [execution] = engine.dispatch(assessment_event())
    assert engine.run(execution.id) == "completed"
    assert Delivery.select().count() == 0
    assert Notification.select().count() == 1


def test_two_executions_assign_with_different_keys(settings, redis_client, store):
    api = AssigningApi()
    engine = make_engine(settings, redis_client, api)
    workflow(store, [{"kind": "assign", "assignee": "user:dave"}])
    for event in (assessment_event(), assessment_event()):
        [execution] = engine.dispatch(event)
        assert engine.run(execution.id) == "completed"
    assert len({c["Idempotency-Key"] for c in api.calls}) == 2
    assert len(api.assignments) == 2


def test_a_refused_assignment_fails_the_execution_with_the_apis_words(
    settings, redis_client, store
):
    from workflow_service.engine import ExecutionFailed

    api = AssigningApi(status=422)
    engine = make_engine(settings, redis_client, api)
    workflow(store, [{"kind": "assign", "assignee": "user:dave"}])
    [execution] = engine.dispatch(assessment_event())
    with pytest.raises(ExecutionFailed):
        engine.run(execution.id)
    failed = Execution.get_by_id(execution.id)
    assert failed.status == "failed" and "(422): nope" in failed.error
    assert Notification.select().count() == 0


@pytest.mark.parametrize(
    ("entity_type", "data", "path", "assignee"),
    [
        ("policy", {"owner": "olivia"}, "/policies/x-1/assignment", "olivia"),
        ("assessment", {"assessor": "amy", "owner": "no"}, "/assessments/x-1/assignment", "amy"),
        ("evidence", {"collector": "cole"}, "/evidence/x-1/assignment", "cole"),
    ],
)
def test_owner_is_each_entity_types_assignee(
    settings, redis_client, store, entity_type, data, path, assignee
):
    api = AssigningApi()
    engine = make_engine(settings, redis_client, api)
    workflow(store, [{"kind": "assign", "assignee": "owner"}], entity_type, "on_update")
    event = Event(
        event_type=f"{entity_type}.updated",
        entity_type=entity_type,
        entity_id="x-1",
        tenant_id="acme",
        data=data,
    )
    [execution] = engine.dispatch(event)
    assert engine.run(execution.id) == "completed"
    assert api.assignments == [(path, assignee)]
