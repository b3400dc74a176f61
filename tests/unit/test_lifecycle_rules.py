"""The lifecycle rules the api enforces, as data and pure functions: which status may
follow which, who may make a move, and who may never decide on an entity."""

from __future__ import annotations

import pytest

from api_service.duties import check_separation_of_duties
from api_service.errors import SeparationOfDuties
from api_service.lifecycle import DECISIONS, FROZEN, allowed_targets, roles_for
from shared.auth import Principal
from shared.lifecycles import LIFECYCLES, lifecycle_of


@pytest.mark.parametrize("entity_type", sorted(LIFECYCLES))
def test_every_move_leads_to_a_status_of_the_same_lifecycle(entity_type):
    lifecycle = lifecycle_of(entity_type)
    assert lifecycle is not None
    assert set(lifecycle.transitions) == set(lifecycle.statuses)
    for targets in lifecycle.transitions.values():
        assert set(targets) <= set(lifecycle.statuses)
    assert set(lifecycle.decisions) <= set(lifecycle.statuses)
    assert set(lifecycle.ends) <= set(lifecycle.statuses)
    # An end is final: nothing moves an entity out of it.
    assert all(lifecycle.transitions[end] == () for end in lifecycle.ends)


def test_an_entity_type_without_an_api_has_no_lifecycle():
    assert lifecycle_of("invoice") is None


def test_a_policy_moves_draft_review_approved_published_archived():
    assert allowed_targets("draft") == ("in_review",)
    assert set(allowed_targets("in_review")) == {"approved", "draft"}
    assert allowed_targets("archived") == ()
    assert allowed_targets("no such status") == ()
    assert set(DECISIONS) == {"approved"}
    assert set(FROZEN) == {"in_review"}


def test_approving_is_for_approvers_and_other_moves_for_editors():
    assert "editor" not in roles_for("in_review", "approved")
    assert "approver" in roles_for("in_review", "approved")
    assert {"editor", "approver"} <= set(roles_for("in_review", "draft"))
    assert roles_for("draft", "in_review") == ("editor", "service")


def principal(sub: str, *roles: str) -> Principal:
    return Principal(sub, frozenset(roles or ("approver",)), "acme")


DUTIES = [("created", "alice"), ("owns", "olivia"), ("submitted", "alice"), ("reviewed", None)]


def decide(who: Principal, deciders=()) -> None:
    check_separation_of_duties(
        who, deciders, DUTIES, noun="policy", target="approved", verb="approve"
    )


def test_someone_without_a_duty_decides():
    decide(principal("bob"))


def test_whoever_created_and_submitted_it_is_told_both():
    with pytest.raises(SeparationOfDuties) as refused:
        decide(principal("alice"))
    assert str(refused.value.description) == (
        "alice created and submitted this policy, so someone else must approve it."
    )


def test_the_owner_is_refused():
    with pytest.raises(SeparationOfDuties, match="olivia owns this policy"):
        decide(principal("olivia"))


def test_the_workflow_service_decides_only_for_the_people_it_names():
    service = principal("workflow-service", "service")
    with pytest.raises(SeparationOfDuties, match="none were named"):
        decide(service)
    decide(service, ["bob", "carol"])
    with pytest.raises(SeparationOfDuties, match="olivia owns"):
        decide(service, ["bob", "olivia"])
