"""What a workflow naming people or statuses of assessments and evidence may say, as
``POST /workflows`` checks it at save: triggers per entity type, decisions inside their
approval branch, statuses of the entity's own lifecycle, ``assign`` naming one person."""

from __future__ import annotations

import pytest

from workflow_service.definitions import InvalidDefinition, validate_definition
from workflow_service.features import install


@pytest.fixture(scope="module", autouse=True)
def steps() -> None:
    install()


def errors_of(definition: dict) -> list[dict]:
    with pytest.raises(InvalidDefinition) as caught:
        validate_definition({"name": "x", **definition})
    return caught.value.errors


def approval(**branches) -> dict:
    return {"kind": "require_approval", "approvers": ["role:approver"], **branches}


@pytest.mark.parametrize(
    ("entity_type", "trigger"),
    [
        ("evidence", "on_expiring"),
        ("evidence", "on_expired"),
        ("assessment", "on_due_approaching"),
        ("assessment", "on_overdue"),
        ("policy", "on_review"),
        ("policy", "on_assign"),
        ("assessment", "on_assign"),
        ("evidence", "on_assign"),
    ],
)
def test_every_event_of_every_entity_type_has_a_trigger(entity_type, trigger):
    from workflow_service.definitions import trigger_for_event

    step = {"kind": "notify", "recipients": ["owner"], "subject": "hi"}
    validate_definition(
        {"name": "x", "entity_type": entity_type, "trigger": trigger, "steps": [step]}
    )
    from shared.events import EVENT_TYPES

    assert all(trigger_for_event(t) for t in EVENT_TYPES)


@pytest.mark.parametrize(
    ("entity_type", "trigger"),
    [("policy", "on_expiring"), ("assessment", "on_expired"), ("evidence", "on_overdue")],
)
def test_a_trigger_no_event_of_the_entity_type_fires_is_refused(entity_type, trigger):
    step = {"kind": "notify", "recipients": ["owner"], "subject": "hi"}
    [error] = errors_of({"entity_type": entity_type, "trigger": trigger, "steps": [step]})
    assert error["field"] == "trigger" and f"no {entity_type} event fires" in error["message"]


@pytest.mark.parametrize(
    ("entity_type", "steps", "field"),
    [
        # a decision outside its approval branch
        ("assessment", [{"kind": "change_status", "to": "completed"}], "steps.0.to"),
        ("evidence", [{"kind": "change_status", "to": "accepted"}], "steps.0.to"),
        ("evidence", [{"kind": "change_status", "to": "rejected"}], "steps.0.to"),
        (
            "assessment",
            [approval(on_reject=[{"kind": "change_status", "to": "completed"}])],
            "steps.0.on_reject.0.to",
        ),
        (
            "evidence",
            [approval(on_approve=[{"kind": "change_status", "to": "rejected"}])],
            "steps.0.on_approve.0.to",
        ),
        # a status of another entity type
        ("assessment", [{"kind": "change_status", "to": "approved"}], "steps.0.to"),
        ("evidence", [{"kind": "change_status", "to": "in_progress"}], "steps.0.to"),
        # assign names one person
        ("evidence", [{"kind": "assign", "assignee": "role:editor"}], "steps.0.assignee"),
        ("evidence", [{"kind": "assign", "assignee": "team:x"}], "steps.0.assignee"),
    ],
)
def test_assessment_and_evidence_steps_are_checked_when_saved(entity_type, steps, field):
    errors = errors_of({"entity_type": entity_type, "trigger": "on_update", "steps": steps})
    assert field in [e["field"] for e in errors], errors


@pytest.mark.parametrize(
    ("entity_type", "steps"),
    [
        (
            "assessment",
            [
                approval(
                    on_approve=[{"kind": "change_status", "to": "completed"}],
                    on_reject=[{"kind": "change_status", "to": "in_progress"}],
                )
            ],
        ),
        (
            "evidence",
            [
                approval(
                    on_approve=[{"kind": "change_status", "to": "accepted"}],
                    on_reject=[{"kind": "change_status", "to": "rejected"}],
                )
            ],
        ),
        ("evidence", [{"kind": "assign", "assignee": "owner"}]),
        ("assessment", [{"kind": "assign", "assignee": "initiator"}]),
        ("policy", [{"kind": "assign", "assignee": "user:dave", "comment": "{{ entity.title }}"}]),
    ],
)
def test_valid_assessment_and_evidence_workflows_are_saved(entity_type, steps):
    validate_definition(
        {"name": "x", "entity_type": entity_type, "trigger": "on_update", "steps": steps}
    )
