"""The statuses each entity type has, and which status may follow which: data both
services read. The api enforces the moves; the workflow service checks a
``change_status`` step's target when a workflow is saved, so a move to a status the
entity type does not have is refused then rather than failing at every run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Lifecycle:
    #: The api's collection path of the entity type (``/policies``).
    collection: str
    statuses: tuple[str, ...]
    transitions: Mapping[str, tuple[str, ...]]
    #: Statuses that record a person's decision, and which: ``approve`` (only an
    #: approval's on_approve steps move there, naming who approved) or ``reject``
    #: (only its on_reject steps, naming who rejected).
    decisions: Mapping[str, Literal["approve", "reject"]] = field(default_factory=dict)
    #: The field holding the person the entity is assigned to (``POST
    #: /<collection>/{id}/assignment`` sets it; the workflow recipient ``owner``).
    owner_field: str = "owner"
    #: Statuses that end the entity's life: its pending approvals close.
    ends: tuple[str, ...] = ()


POLICY = Lifecycle(
    collection="policies",
    statuses=("draft", "in_review", "approved", "published", "archived"),
    transitions={
        "draft": ("in_review",),
        "in_review": ("approved", "draft"),
        "approved": ("published", "draft"),
        "published": ("archived", "in_review"),
        "archived": (),
    },
    decisions={"approved": "approve"},
    ends=("archived",),
)

ASSESSMENT = Lifecycle(
    collection="assessments",
    statuses=("planned", "in_progress", "under_review", "completed", "cancelled"),
    transitions={
        "planned": ("in_progress", "cancelled"),
        "in_progress": ("under_review", "cancelled"),
        "under_review": ("completed", "in_progress", "cancelled"),
        "completed": (),
        "cancelled": (),
    },
    decisions={"completed": "approve"},
    owner_field="assessor",
    ends=("cancelled",),
)

EVIDENCE = Lifecycle(
    collection="evidence",
    statuses=("draft", "submitted", "accepted", "rejected", "expired"),
    transitions={
        "draft": ("submitted",),
        "submitted": ("accepted", "rejected"),
        # Only the system moves accepted evidence to expired (its valid_until passed).
        "accepted": ("expired",),
        "rejected": (),
        "expired": (),
    },
    decisions={"accepted": "approve", "rejected": "reject"},
    owner_field="collector",
)

#: Entity types the api serves, by name. An entity type missing here has no api: it has
#: no status to move to and nothing to load.
LIFECYCLES: dict[str, Lifecycle] = {
    "policy": POLICY,
    "assessment": ASSESSMENT,
    "evidence": EVIDENCE,
}


def lifecycle_of(entity_type: str) -> Lifecycle | None:
    return LIFECYCLES.get(entity_type)
