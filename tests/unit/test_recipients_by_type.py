"""The save-time checks of recipients find the options naming people by their type
(:data:`workflow_service.steps.recipients.Recipient` and the types built on it), not by
option name: a step kind whose option is called ``reviewers``, or whose recipients sit in
a nested model or in an approval's nested steps, is checked like ``notify``'s
``recipients``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ConfigDict, Field

from workflow_service.definitions import InvalidDefinition, validate_definition
from workflow_service.features import install
from workflow_service.steps import registry
from workflow_service.steps.base import Step, StepConfig
from workflow_service.steps.recipients import Recipient, named_people, named_users


class Panel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    chair: Recipient | None = None
    title: str = ""


class PeerReviewConfig(StepConfig):
    reviewers: list[Recipient] = Field(min_length=1, max_length=10)
    panel: Panel | None = None
    #: A string option that is no recipient: never read as one.
    note: str = ""


class PeerReview(Step):
    kind = "peer_review_for_tests"
    Config = PeerReviewConfig


@pytest.fixture(scope="module", autouse=True)
def steps() -> Iterator[None]:
    install()
    registry.register(PeerReview)
    yield
    registry._REGISTRY.pop(PeerReview.kind, None)


def workflow(*steps, entity_type="policy", trigger="on_update", **extra) -> dict:
    return {
        "name": "Peer review",
        "entity_type": entity_type,
        "trigger": trigger,
        "steps": list(steps),
        **extra,
    }


def errors_of(data: dict) -> dict[str, str]:
    with pytest.raises(InvalidDefinition) as refused:
        validate_definition(data)
    return {e["field"]: e["message"] for e in refused.value.errors}


def review(**options) -> dict:
    return {"kind": PeerReview.kind, "reviewers": ["role:approver"], **options}


def test_a_differently_named_recipient_option_is_found():
    step = review(
        reviewers=["user:alice", "owner"],
        panel={"chair": "user:bob", "title": "owner"},
        note="initiator",
    )
    assert list(named_people([step])) == [
        ("steps.0.reviewers.0", "user:alice"),
        ("steps.0.reviewers.1", "owner"),
        ("steps.0.panel.chair", "user:bob"),
    ]
    assert list(named_users([step])) == [
        ("steps.0.reviewers.0", "alice"),
        ("steps.0.panel.chair", "bob"),
    ]


def test_a_policy_workflow_naming_policy_owners_there_is_refused_at_save():
    errors = errors_of(workflow(review(reviewers=["role:approver", "policy_owners"])))
    assert "policy events name no linked policies" in errors["steps.0.reviewers.1"]


def test_a_nested_models_recipient_is_checked_at_save():
    errors = errors_of(workflow(review(panel={"chair": "policy_owners"})))
    assert "policy events name no linked policies" in errors["steps.0.panel.chair"]


def test_a_scheduled_workflow_naming_the_owner_there_is_refused_at_save():
    errors = errors_of(
        workflow(
            review(reviewers=["owner"], panel={"chair": "initiator"}),
            entity_type="policy",
            trigger="scheduled",
            trigger_config={"cron": "0 9 * * 1"},
        )
    )
    assert "a scheduled run has no event" in errors["steps.0.reviewers.0"]
    assert "a scheduled run has no event" in errors["steps.0.panel.chair"]


def test_recipients_in_an_approvals_nested_steps_are_found():
    approval = {
        "kind": "require_approval",
        "approvers": ["role:approver"],
        "on_approve": [review(reviewers=["policy_owners"])],
    }
    errors = errors_of(workflow(approval))
    assert "policy events name no linked policies" in errors["steps.0.on_approve.0.reviewers.0"]


def test_a_string_option_of_another_type_is_no_recipient():
    validate_definition(workflow(review(note="policy_owners", panel={"title": "policy_owners"})))
