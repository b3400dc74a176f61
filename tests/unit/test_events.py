import dramatiq
import pytest

from shared.events import (
    DISPATCH_ACTOR,
    DISPATCH_JOBS,
    Event,
    InvalidEvent,
    event_message,
    parse_event,
)


def make_event(**overrides) -> Event:
    fields = {
        "event_type": "policy.status_changed",
        "entity_type": "policy",
        "entity_id": "p-1",
        "tenant_id": "acme",
        "data": {"status": "in_review", "old_status": "draft"},
    }
    return Event(**{**fields, **overrides})


def test_message_carries_the_event_with_its_id_as_message_id():
    event = make_event()
    message = event_message(event)
    assert message.message_id == event.event_id
    assert message.queue_name == "governance.policy"
    assert message.actor_name == DISPATCH_ACTOR
    assert message.options["tenant_id"] == "acme"
    assert parse_event(message.args[0]) == event


def test_round_trip_through_json_keeps_every_field():
    event = make_event(causation=["e-0"], actor="alice")
    assert parse_event(event.to_payload()) == event


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "text",
        {"event_type": "policy.created"},
        {
            "event_type": "policy.exploded",
            "entity_type": "policy",
            "entity_id": "x",
            "tenant_id": "t",
        },
        {
            "event_type": "evidence.created",
            "entity_type": "policy",
            "entity_id": "x",
            "tenant_id": "t",
        },
        {
            "event_type": "policy.created",
            "entity_type": "policy",
            "entity_id": "x",
            "tenant_id": "t",
            "surprise": 1,
        },
        {
            "schema_version": 2,
            "event_type": "policy.created",
            "entity_type": "policy",
            "entity_id": "x",
            "tenant_id": "t",
        },
    ],
)
def test_invalid_payloads_are_rejected_with_a_reason(payload):
    with pytest.raises(InvalidEvent) as info:
        parse_event(payload)
    assert str(info.value)


def test_causation_chain_grows_by_one_per_hop():
    first = make_event()
    second = make_event(causation=first.caused_chain())
    assert second.depth == 1
    assert second.caused_chain() == [first.event_id, second.event_id]


def test_event_ids_are_bounded_by_the_execution_column():
    # Given: payloads whose event id, or an id in the causation chain, does not fit the
    # workflow service's Execution.event_id column (64 characters)
    payload = make_event().to_payload()
    too_long = "e" * 65
    # Then: they are invalid at once (not a database error retried five times)
    with pytest.raises(InvalidEvent, match="event_id"):
        parse_event({**payload, "event_id": too_long})
    with pytest.raises(InvalidEvent, match="causation"):
        parse_event({**payload, "causation": ["e-0", too_long]})
    with pytest.raises(InvalidEvent, match="event_id"):
        parse_event({**payload, "event_id": ""})
    # And: 64 characters fit, as do the UUIDs the api makes
    assert parse_event({**payload, "event_id": "e" * 64, "causation": ["c" * 64]})
    assert len(make_event().event_id) == 36


def test_the_dispatch_job_spec_builds_the_same_message_bytes_as_by_hand():
    # The message the workflow service has always read: its bytes must not change.
    event = make_event(entity_type="evidence", event_type="evidence.created")
    by_hand = dramatiq.Message(
        queue_name="governance.evidence",
        actor_name="dispatch_event_evidence",
        args=(event.to_payload(),),
        kwargs={},
        options={"tenant_id": "acme"},
        message_id=event.event_id,
        message_timestamp=0,
    )
    built = event_message(event)._replace(message_timestamp=0)
    assert built.encode() == by_hand.encode()
    spec = DISPATCH_JOBS["evidence"]
    assert (spec.name, spec.queue, spec.args) == (built.actor_name, built.queue_name, Event)
