"""The ``policy_owners`` recipient: the owners of the policies an evidence or assessment
is linked to, read from the event data the api computed; and where a saved workflow may
not name it."""

from __future__ import annotations

import pytest

from shared.events import Event
from workflow_service.definitions import InvalidDefinition, validate_definition
from workflow_service.models import Notification, StepRun
from workflow_service.runtime import cache_invalidator
from workflow_service.steps.recipients import GRAMMAR, parse_recipient
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


def errors_of(data: dict) -> dict[str, str]:
    with pytest.raises(InvalidDefinition) as caught:
        validate_definition(data)
    return {e["field"]: e["message"] for e in caught.value.errors}


def test_it_is_a_form_of_the_one_grammar():
    assert str(parse_recipient(" policy_owners ")) == "policy_owners"
    assert "'policy_owners'" in GRAMMAR


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


@pytest.mark.parametrize(
    "steps",
    [
        [NOTIFY_OWNERS],
        [
            {
                "kind": "require_approval",
                "approvers": ["role:approver"],
                "on_approve": [{**NOTIFY_OWNERS, "recipients": ["owner", "policy_owners"]}],
            }
        ],
    ],
)
def test_a_policy_workflow_naming_them_is_refused_naming_step_and_option(steps):
    errors = errors_of(definition("policy", steps))
    [(field, message)] = errors.items()
    assert field in ("steps.0.recipients.0", "steps.0.on_approve.0.recipients.1")
    assert "policy events name no linked policies" in message
    assert "'policy_owners' is for assessment and evidence workflows" in message


@pytest.mark.parametrize("entity_type", ["evidence", "assessment"])
def test_evidence_and_assessment_workflows_may_name_them(entity_type):
    saved = validate_definition(definition(entity_type))
    assert saved.steps[0]["recipients"] == ["policy_owners"]


@pytest.mark.parametrize(
    ("step", "field", "words"),
    [
        (
            {"kind": "require_approval", "approvers": ["policy_owners"]},
            "steps.0.approvers.0",
            "notify recipients only",
        ),
        (
            {"kind": "require_approval", "approvers": ["owner"], "escalate_to": ["policy_owners"]},
            "steps.0.escalate_to.0",
            "notify recipients only",
        ),
        (
            {"kind": "create_task", "assignee": "policy_owners", "title": "t"},
            "steps.0.assignee",
            "notify recipients only",
        ),
        ({"kind": "assign", "assignee": "policy_owners"}, "steps.0.assignee", "several people"),
    ],
)
def test_options_naming_one_person_or_stored_approvers_refuse_them(step, field, words):
    errors = errors_of(definition("evidence", [step]))
    assert field in errors, errors
    assert words in errors[field], errors


def test_a_scheduled_run_has_no_policy_owners_to_name():
    errors = errors_of(
        definition(
            "evidence",
            trigger="scheduled",
            trigger_config={"cron": "0 9 * * 1", "entity_id": "e-1"},
        )
    )
    assert "'policy_owners'" in errors["steps.0.recipients.0"]
