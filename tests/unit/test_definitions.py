"""Workflow definitions as ``POST /workflows`` validates them, without a database: the
definition's own fields, each step's options through the step registry, and the checks
across them. Each error names the field to fix (``steps.1.subject``)."""

from __future__ import annotations

import pytest

from workflow_service.definitions import InvalidDefinition, validate_definition
from workflow_service.features import install
from workflow_service.steps.registry import kinds


@pytest.fixture(scope="module", autouse=True)
def steps() -> None:
    install()


def workflow(*steps, **fields) -> dict:
    return {
        "name": "Review",
        "entity_type": "policy",
        "trigger": "on_status_change",
        "steps": list(steps)
        or [{"kind": "notify", "recipients": ["owner"], "subject": "{{ entity.title }}"}],
        **fields,
    }


def errors_of(data) -> dict[str, str]:
    with pytest.raises(InvalidDefinition) as refused:
        validate_definition(data)
    return {error["field"]: error["message"] for error in refused.value.errors}


def test_a_valid_definition_is_stored_as_given():
    definition = validate_definition(
        workflow(conditions=[{"field": "data.new_status", "op": "eq", "value": "in_review"}])
    )
    stored = definition.stored()
    assert stored["entity_type"] == "policy" and stored["steps"][0]["kind"] == "notify"
    assert stored["conditions"] == [{"field": "data.new_status", "op": "eq", "value": "in_review"}]


def test_the_core_step_kinds_are_registered():
    assert {"notify", "change_status", "require_approval"} <= set(kinds())


def test_a_body_that_is_not_an_object_is_refused():
    assert errors_of(["steps"]) == {"body": "must be a JSON object"}


def test_unknown_fields_and_a_missing_step_list_are_named():
    errors = errors_of({**workflow(), "colour": "red", "steps": []})
    assert errors["colour"] == "unknown field"
    assert "steps" in errors


def test_an_unknown_step_kind_lists_the_known_ones():
    errors = errors_of(workflow({"kind": "teleport"}))
    assert "unknown step kind 'teleport'" in errors["steps.0.kind"]
    assert "notify" in errors["steps.0.kind"]


def test_a_steps_options_are_checked_by_its_kind():
    errors = errors_of(
        workflow(
            {"kind": "notify", "recipients": ["owner"], "subject": "ok"},
            {"kind": "notify", "recipients": ["owner"], "subject": "", "colour": "red"},
        )
    )
    assert "steps.1.subject" in errors and errors["steps.1.colour"] == "unknown field"
    assert not any(field.startswith("steps.0") for field in errors)


def test_step_errors_are_reported_with_the_definitions_own():
    errors = errors_of({**workflow({"kind": "teleport"}), "trigger": "whenever"})
    assert {"trigger", "steps.0.kind"} <= set(errors)


def test_a_move_to_a_status_the_entity_type_lacks_is_refused():
    errors = errors_of(workflow({"kind": "change_status", "to": "shredded"}))
    assert "policy has no status 'shredded'" in errors["steps.0.to"]


def test_a_trigger_no_event_of_the_entity_type_fires_is_refused():
    errors = errors_of(workflow(trigger="on_expiring"))
    assert "no policy event fires 'on_expiring'" in errors["trigger"]


def test_only_scheduled_workflows_take_a_trigger_config():
    errors = errors_of(workflow(trigger_config={"cron": "0 9 * * *"}))
    assert "only 'scheduled'" in errors["trigger_config"]


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "data.tags", "op": "in", "value": "security"},  # in needs a list
        {"field": "data.version", "op": "gt", "value": True},
        {"field": "data.owner", "op": "exists", "value": "yes"},
        {"field": "data.tags", "op": "contains"},
        {"field": "data..owner", "op": "eq", "value": "x"},
        {"field": "data.owner", "op": "like", "value": "x"},
        {"field": "data.owner", "op": "eq", "value": {"nested": 1}},
        {"field": "data.owner", "op": "in", "value": list(range(101))},
    ],
)
def test_conditions_are_checked_at_save(condition):
    errors = errors_of(workflow(conditions=[condition]))
    assert any(field.startswith("conditions.0") for field in errors), errors


def test_a_template_reading_a_name_it_is_not_given_is_refused():
    errors = errors_of(
        workflow({"kind": "notify", "recipients": ["owner"], "subject": "{{ secrets.key }}"})
    )
    assert "steps.0.subject" in errors


def test_a_template_reaching_for_internals_is_refused():
    subject = "{{ entity.__class__ }}"
    errors = errors_of(workflow({"kind": "notify", "recipients": ["owner"], "subject": subject}))
    assert "steps.0.subject" in errors


@pytest.mark.parametrize("recipient", ["team:x", "user:", "role:wizard", "", "a b"])
def test_recipients_in_no_known_form_are_refused_naming_the_option(recipient):
    errors = errors_of(workflow({"kind": "notify", "recipients": [recipient], "subject": "s"}))
    assert any(field.startswith("steps.0.recipients") for field in errors), errors


@pytest.mark.parametrize(
    "recipient", ["owner", "initiator", "alice", "user:alice", "role:approver"]
)
def test_every_recipient_form_is_accepted(recipient):
    validate_definition(workflow({"kind": "notify", "recipients": [recipient], "subject": "s"}))


def test_policy_owners_is_for_evidence_and_assessment_workflows():
    notify = {"kind": "notify", "recipients": ["policy_owners"], "subject": "s"}
    validate_definition(workflow(notify, entity_type="evidence"))
    errors = errors_of(workflow(notify))
    assert "policy_owners" in errors["steps.0.recipients.0"]


def test_an_approval_only_its_owner_and_initiator_could_decide_is_refused():
    approval = {
        "kind": "require_approval",
        "approvers": ["owner", "initiator"],
        "on_approve": [{"kind": "change_status", "to": "approved"}],
    }
    errors = errors_of(workflow(approval))
    assert "may not decide" in errors["steps.0"]
    # Given someone else to decide, the same approval is fine.
    validate_definition(workflow({**approval, "approvers": ["owner", "role:approver"]}))


def test_a_quorum_larger_than_the_named_approvers_is_refused():
    approval = {"kind": "require_approval", "approvers": ["alice", "bob"], "quorum": 3}
    errors = errors_of(workflow({**approval, "mode": "quorum"}))
    assert "needs at least 3 approvers" in errors["steps.0.quorum"]
