"""A run's trigger carries the envelope of :class:`shared.events.Event`, the one model of
a trigger event: the same fields, and an event becomes the same trigger whether read as
the typed event or from the payload an execution stores."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from shared.events import Event
from workflow_service.steps.base import Trigger


def test_a_trigger_has_the_events_fields():
    # A field added to the event and not to the trigger would be lost to every step.
    assert {f.name for f in dataclasses.fields(Trigger)} == set(Event.model_fields) - {
        "schema_version"
    }


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"actor": "alice"},
        {"actor": "service", "initiator": "bob", "causation": ["e-0", "e-1"]},
        {"occurred_at": datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)},
    ],
)
def test_an_event_is_the_same_trigger_typed_or_from_its_payload(extra):
    event = Event(
        event_type="evidence.expiring",
        entity_type="evidence",
        entity_id="e-1",
        tenant_id="acme",
        data={"status": "accepted", "policy_owners": ["carol"]},
        **extra,
    )
    trigger = Trigger.from_event(event)
    assert trigger == Trigger.from_payload(event.to_payload())
    assert trigger.initiator == (event.initiator or event.actor)
    assert trigger.to_payload()["occurred_at"] == event.to_payload()["occurred_at"]
