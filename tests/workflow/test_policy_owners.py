"""The ``policy_owners`` recipient: the owners of the policies an evidence or assessment
is linked to, read from the event data the api computed. (Where a saved workflow may not
name it: tests/unit/test_policy_owners_at_save.py.)"""

from __future__ import annotations

import pytest

from shared.events import Event
from workflow_service.definitions import validate_definition
from workflow_service.models import Notification, StepRun
from workflow_service.runtime import cache_invalidator
from workflow_service.workflows import WorkflowStore

NOTIFY_OWNERS = {"kind": "notify", "recipients": ["policy_owners"], "subject": "Hi"}


@pytest.fixture
def store(workflow_db, redis_client, namespace):
    return WorkflowStore(workflow_db, cache_invalidator(redis_client, namespace))


def definition(entity_type="evidence", steps=None, trigger="on_update", **extra) -> dict:
    return {
        "name": "tell the owners",
        "entity_type": entity_type,
        "trigger": trigger,
        "steps": steps or [NOTIFY_OWNERS],
        **extra,
    }


def entity_event(entity_type: str, **data) -> Event:
    return Event(
        event_type=f"{entity_type}.updated",
        entity_type=entity_type,
        entity_id="x-1",
        tenant_id="acme",
        actor="ed",
        data={"title": "Linked", **data},
    )


@pytest.mark.parametrize(
    ("entity_type", "owner_field"), [("evidence", "collector"), ("assessment", "assessor")]
)
def test_the_owners_of_the_linked_policies_are_told_once_each(
    engine, store, entity_type, owner_field
):
    # Given: a workflow telling the linked policies' owners and the entity's owner
    steps = [{**NOTIFY_OWNERS, "recipients": ["policy_owners", "owner"]}]
    store.create("acme", "alice", validate_definition(definition(entity_type, steps)), "active")
    # When: an event whose owners include the entity's owner runs it
    event = entity_event(entity_type, policy_owners=["dave", "erin", "amy"], **{owner_field: "amy"})
    [execution] = engine.dispatch(event)
    assert engine.run(execution.id) == "completed"
    # Then: each of them is told once, the entity's owner not twice
    notes = Notification.select().where(Notification.execution == execution.id)
    assert sorted(n.recipient for n in notes) == ["amy", "dave", "erin"]


@pytest.mark.parametrize("data", [{"policy_owners": []}, {}])
def test_no_linked_policy_owner_names_nobody_and_says_so(engine, store, data):
    # Given: evidence linked to no policy (or a manual run's data without owners)
    store.create("acme", "alice", validate_definition(definition()), "active")
    [execution] = engine.dispatch(entity_event("evidence", **data))
    # When it runs, nobody is told, and the step says why
    assert engine.run(execution.id) == "completed"
    assert not Notification.select().where(Notification.execution == execution.id).exists()
    [run] = StepRun.select().where(StepRun.execution == execution.id)
    assert run.output["recipients"] == []
    assert run.output["skipped"] == [
        "'policy_owners': the trigger's entity data names no policy owner"
    ]
