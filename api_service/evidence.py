"""Evidence: what shows a policy works (a document, screenshot, config, log or link),
linked to policies and assessments, accepted or rejected as a decision by someone other
than its collector, expired by the system once its ``valid_until`` has passed."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, StringConstraints, field_validator

from api_service.assessments import (
    MAX_LINKS,
    LongText,
    Person,
    Title,
    check_policy_links,
    contains_id,
    linked_policy_owners,
    missing_ids,
    parse_date,
    parse_id,
    person,
    unique_ids,
)
from api_service.entities import EntityKind
from api_service.errors import InvalidEntity, UnknownLinks
from api_service.models import Assessment, Evidence, EvidenceVersion
from api_service.policies import json_value
from shared.http import StrictModel, parse_choice
from shared.lifecycles import EVIDENCE

Status = Literal["draft", "submitted", "accepted", "rejected", "expired"]
Kind = Literal["document", "screenshot", "config", "log", "link"]
KINDS = ("document", "screenshot", "config", "log", "link")
Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2000, pattern=r"^https?://[^\s]+$"),
]

EDITABLE_FIELDS = (
    "title",
    "description",
    "kind",
    "url",
    "policies",
    "assessments",
    "collector",
    "collected_at",
    "valid_until",
)
SNAPSHOT_FIELDS = (
    "title",
    "kind",
    "policies",
    "assessments",
    "collector",
    "collected_at",
    "valid_until",
    "status",
    "version",
    "sha256",
    "created_by",
    "updated_by",
)


def _naive_utc(value: datetime | None) -> datetime | None:
    # Timestamps are stored as naive UTC, like every other one of the api.
    if value is not None and value.tzinfo is not None:
        try:
            return value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            # 0001-01-01T00:00:00+14:00 is before the calendar's first day in UTC.
            raise ValueError("is out of range once converted to UTC") from None
    return value


class EvidenceCreate(StrictModel):
    title: Title
    description: LongText = ""
    kind: Kind
    #: The evidence itself, for kind ``link`` (and only then).
    url: Url | None = None
    policies: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_LINKS)
    assessments: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_LINKS)
    #: Defaults to the caller.
    collector: Person | None = None
    collected_at: datetime | None = None
    valid_until: date | None = None

    _utc = field_validator("collected_at")(_naive_utc)


class EvidenceUpdate(StrictModel):
    """Fields to change; ``version`` is the version the change is based on (or If-Match)."""

    title: Title | None = None
    description: LongText | None = None
    kind: Kind | None = None
    url: Url | None = None
    policies: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LINKS)
    assessments: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LINKS)
    collector: Person | None = None
    collected_at: datetime | None = None
    valid_until: date | None = None
    version: StrictInt | None = Field(default=None, ge=1)

    _utc = field_validator("collected_at")(_naive_utc)

    @field_validator(
        "title", "description", "kind", "policies", "assessments", "collector", mode="before"
    )
    @classmethod
    def _not_null(cls, value):
        if value is None:
            raise ValueError("may not be null")
        return value


class EvidenceOut(BaseModel):
    id: str
    tenant: str
    title: str
    description: str
    kind: Kind
    url: str | None
    policies: list[str]
    assessments: list[str]
    collector: str
    collected_at: datetime | None
    valid_until: date | None
    status: Status
    version: int
    #: The stored file (PUT /evidence/{id}/file), null without one.
    file_name: str | None
    content_type: str | None
    size: int | None
    sha256: str | None
    file_href: str | None
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


def evidence_body(row: Evidence) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant": row.tenant,
        "title": row.title,
        "description": row.description,
        "kind": row.kind,
        "url": row.url,
        "policies": list(row.policies or []),
        "assessments": list(row.assessments or []),
        "collector": row.collector,
        "collected_at": json_value(row.collected_at),
        "valid_until": json_value(row.valid_until),
        "status": row.status,
        "version": row.version,
        "file_name": row.file_name,
        "content_type": row.content_type,
        "size": row.size,
        "sha256": row.sha256,
        "file_href": f"/evidence/{row.id}/file" if row.file_path else None,
        "created_by": row.created_by,
        "created_at": json_value(row.created_at),
        "updated_by": row.updated_by,
        "updated_at": json_value(row.updated_at),
    }


def create_values(data: EvidenceCreate, caller: str) -> dict[str, Any]:
    values = data.model_dump()
    values["policies"] = unique_ids(data.policies)
    values["assessments"] = unique_ids(data.assessments)
    values["collector"] = data.collector or caller
    return values


def update_values(data: EvidenceUpdate) -> dict[str, Any]:
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    for name in ("policies", "assessments"):
        if name in changes:
            changes[name] = unique_ids(getattr(data, name))
    return changes


def _check_values(tenant: str, values: dict[str, Any], changed: set[str]) -> None:
    if values.get("kind") == "link" and not values.get("url"):
        raise InvalidEntity("Evidence of kind 'link' needs a 'url' (http or https).")
    if values.get("kind") != "link" and values.get("url"):
        raise InvalidEntity(
            f"Only evidence of kind 'link' has a 'url'; this one is a {values.get('kind')}: "
            "leave 'url' out (or null), or upload its file (PUT /evidence/{id}/file)."
        )
    if "policies" in changed:
        check_policy_links(tenant, list(values.get("policies") or []))
    missing = []
    if "assessments" in changed:
        missing = missing_ids(Assessment, tenant, list(values.get("assessments") or []))
    if missing:
        raise UnknownLinks(
            f"No assessment {', '.join(missing)} in tenant {tenant}: link only existing "
            "assessments.",
            missing=missing,
        )


_FROZEN_SUBMITTED = (
    "The evidence is submitted for a decision (version {version}) and does not change "
    "while it is decided on. Submitted evidence is not withdrawn: an approver rejects it "
    '(POST /evidence/{id}/transitions with {{"to": "rejected"}}) and new evidence is '
    "collected, or accepts it as it is."
)
_FROZEN_DECIDED = (
    "The evidence is {status} (version {version}): what was accepted is a record and "
    "does not change; collect new evidence instead."
)

EVIDENCE_KIND = EntityKind(
    name="evidence",
    model=Evidence,
    version_model=EvidenceVersion,
    version_fk="evidence",
    lifecycle=EVIDENCE,
    initial_status="draft",
    body=evidence_body,
    snapshot_fields=SNAPSHOT_FIELDS,
    editable_fields=EDITABLE_FIELDS,
    assignee_field="collector",
    move_roles={
        ("submitted", "accepted"): ("approver", "service"),
        ("submitted", "rejected"): ("approver", "service"),
    },
    decisions=frozenset({"accepted", "rejected"}),
    duties=lambda row: [("created", row.created_by), ("collected", row.collector)],
    decision_verb="decide on",
    system_only=frozenset({"expired"}),
    frozen={
        "submitted": _FROZEN_SUBMITTED,
        "accepted": _FROZEN_DECIDED,
        "expired": _FROZEN_DECIDED,
    },
    frozen_title="Evidence submitted or decided",
    check_values=_check_values,
    event_extra=linked_policy_owners,
)

FILTER_DOCS = (
    ("status", {"type": "string", "enum": list(EVIDENCE.statuses)}, ""),
    ("collector", {"type": "string"}, ""),
    ("kind", {"type": "string", "enum": list(KINDS)}, ""),
    ("policy", {"type": "string", "format": "uuid"}, "Evidence linked to this policy"),
    ("assessment", {"type": "string", "format": "uuid"}, "Evidence of this assessment"),
    ("valid_after", {"type": "string", "format": "date"}, "Valid until this date or later"),
    ("valid_before", {"type": "string", "format": "date"}, "Valid until this date or earlier"),
)


def filters(req) -> list[Any]:
    conditions: list[Any] = []
    status = parse_choice(req, "status", EVIDENCE.statuses)
    if status:
        conditions.append(Evidence.status == status)
    collector = person(req, "collector")
    if collector:
        conditions.append(Evidence.collector == collector)
    kind = parse_choice(req, "kind", KINDS)
    if kind:
        conditions.append(Evidence.kind == kind)
    policy = parse_id(req, "policy")
    if policy:
        conditions.append(contains_id(Evidence.policies, policy))
    assessment = parse_id(req, "assessment")
    if assessment:
        conditions.append(contains_id(Evidence.assessments, assessment))
    valid_after = parse_date(req, "valid_after")
    if valid_after:
        conditions.append(Evidence.valid_until >= valid_after)
    valid_before = parse_date(req, "valid_before")
    if valid_before:
        conditions.append(Evidence.valid_until <= valid_before)
    return conditions
