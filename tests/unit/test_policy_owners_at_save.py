"""Where a saved workflow may name the ``policy_owners`` recipient (the owners of the
policies an evidence or assessment is linked to): only in ``notify`` recipients of an
evidence or assessment workflow that runs on an event. (Who it names at run time is
tested in tests/workflow/test_policy_owners.py.)"""

from __future__ import annotations

import pytest

from workflow_service.definitions import InvalidDefinition, validate_definition
from workflow_service.features import install
from workflow_service.steps.recipients import GRAMMAR, parse_recipient

NOTIFY_OWNERS = {"kind": "notify", "recipients": ["policy_owners"], "subject": "Hi"}


@pytest.fixture(scope="module", autouse=True)
def steps() -> None:
    install()


def definition(entity_type="evidence", steps=None, trigger="on_update", **extra) -> dict:
    return {
        "name": "tell the owners",
        "entity_type": entity_type,
        "trigger": trigger,
        "steps": steps or [NOTIFY_OWNERS],
        **extra,
    }


def errors_of(data: dict) -> dict[str, str]:
    with pytest.raises(InvalidDefinition) as caught:
        validate_definition(data)
    return {e["field"]: e["message"] for e in caught.value.errors}


def test_it_is_a_form_of_the_one_grammar():
    assert str(parse_recipient(" policy_owners ")) == "policy_owners"
    assert "'policy_owners'" in GRAMMAR


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
