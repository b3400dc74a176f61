"""Trigger events: the versioned message the api publishes and the workflow service reads.

The api builds a :class:`dramatiq.Message` with :func:`event_message` (through the
entity type's job spec in :data:`DISPATCH_JOBS`, which the workflow service declares its
dispatch actors from) and enqueues it on the broker; it never imports workflow code.
The message id is the event id, so a republished outbox row is recognisably the same
message.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import dramatiq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.jobs import JobSpec
from shared.queues import ENTITY_QUEUES

SCHEMA_VERSION: Literal[1] = 1
#: Name of the workflow service actor that receives trigger events (on governance.policy;
#: see dispatch_actor_name for the other entity queues).
DISPATCH_ACTOR = "dispatch_event"
#: HTTP header carrying the causation chain of a change a workflow step asks the api to
#: make: the event ids that led to it, oldest first, comma-separated. The api copies it
#: into the ``causation`` of the events that change emits.
CAUSATION_HEADER = "X-Causation"
INITIATOR_HEADER = "X-Initiator"
#: Who approved, comma-separated: sent by the workflow service with a move to
#: ``approved`` that an approval decided, so the api can check them (a move to approved
#: by the service without it is refused).
DECIDED_BY_HEADER = "X-Decided-By"

EntityType = Literal["policy", "assessment", "evidence"]
#: The entity types, in one place: workflow definitions, filters and queues read it.
ENTITY_TYPES: tuple[str, ...] = get_args(EntityType)
#: An event id: the api makes UUIDs (36 characters). The bound is the workflow service's
#: ``Execution.event_id`` column, so an over-long id fails validation at once (no
#: retries) instead of as a database error on insert.
EventId = Annotated[str, Field(min_length=1, max_length=64)]
#: What happens to every entity type.
COMMON_VERBS = (
    "created",
    "updated",
    "status_changed",
    "deleted",
    "deadline_approaching",
    "deadline_passed",
    "assigned",
)
#: The verbs of each entity type's events (``evidence.expiring``...).
EVENT_VERBS: dict[str, tuple[str, ...]] = {
    "policy": (*COMMON_VERBS, "reviewed"),
    "assessment": (*COMMON_VERBS, "due_approaching", "overdue"),
    "evidence": (*COMMON_VERBS, "expiring", "expired"),
}
assert set(EVENT_VERBS) == set(ENTITY_TYPES)
EVENT_TYPES = frozenset(
    f"{entity}.{verb}" for entity, verbs in EVENT_VERBS.items() for verb in verbs
)


class InvalidEvent(ValueError):
    """A message body that is not a valid trigger event; retrying cannot fix it."""


class Event(BaseModel):
    """A trigger event. ``data`` is the entity snapshot workflows match on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: EventId = Field(default_factory=lambda: str(uuid.uuid4()))
    event_type: str
    entity_type: EntityType
    entity_id: str = Field(min_length=1, max_length=64)
    tenant_id: str = Field(min_length=1, max_length=64)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    actor: str | None = None
    #: The person whose change started the causation chain, when the actor acted for
    #: them (a workflow's change_status): the person separation of duties is about.
    initiator: str | None = Field(default=None, min_length=1, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)
    #: Ids of the events that led to this one, oldest first (loop protection).
    causation: list[EventId] = Field(default_factory=list)

    def model_post_init(self, __context: Any) -> None:
        if self.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event_type {self.event_type!r}")
        if not self.event_type.startswith(self.entity_type + "."):
            raise ValueError("event_type does not belong to entity_type")

    @property
    def queue_name(self) -> str:
        return ENTITY_QUEUES[self.entity_type]

    @property
    def depth(self) -> int:
        """How many events led to this one."""
        return len(self.causation)

    def caused_chain(self) -> list[str]:
        """The causation list an event caused by this one carries."""
        return [*self.causation, self.event_id]

    def to_payload(self) -> dict[str, Any]:
        # Without an initiator the payload is what workers before that field read.
        return self.model_dump(
            mode="json", exclude={"initiator"} if self.initiator is None else None
        )


def parse_event(payload: Any) -> Event:
    """Validate a message body; raise :class:`InvalidEvent` with the reason."""
    if not isinstance(payload, dict):
        raise InvalidEvent("event payload must be a JSON object")
    try:
        return Event.model_validate(payload)
    except (ValidationError, ValueError) as exc:
        raise InvalidEvent(str(exc)) from None


def dispatch_actor_name(entity_type: str) -> str:
    """The dispatch actor of an entity's queue.

    A Dramatiq actor belongs to one queue and takes its retry policy from it, so each
    entity queue has its own dispatch actor: ``dispatch_event`` on governance.policy,
    ``dispatch_event_<entity>`` on the others.
    """
    return DISPATCH_ACTOR if entity_type == "policy" else f"{DISPATCH_ACTOR}_{entity_type}"


def _dispatch_args(event: Event) -> tuple[tuple[Any, ...], dict[str, Any], str]:
    # The message id is the event id: a republished outbox row is the same message.
    return (event.to_payload(),), {"tenant_id": event.tenant_id}, event.event_id


#: The dispatch job of each entity type: the api sends its events with it, and the
#: workflow service declares the actor receiving them from it.
DISPATCH_JOBS: dict[str, JobSpec[Event]] = {
    entity: JobSpec(dispatch_actor_name(entity), queue, Event, _dispatch_args)
    for entity, queue in ENTITY_QUEUES.items()
}


def event_message(event: Event) -> dramatiq.Message:
    """The Dramatiq message that carries ``event`` to the workflow service."""
    return DISPATCH_JOBS[event.entity_type].message(event)
