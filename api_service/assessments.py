"""Assessments: how well a tenant's policies work, assessed by a person and completed as
a decision by someone else, on the evidence linked to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any, Literal, cast

import peewee
from pydantic import BaseModel, Field, StrictInt, StringConstraints, field_validator

from api_service.entities import EntityKind
from api_service.errors import RequirementsNotMet, UnknownLinks
from api_service.models import Assessment, AssessmentVersion, Evidence, Policy, database
from api_service.policies import json_value
from shared.db import is_postgres
from shared.http import StrictModel, bad_parameter, parse_choice
from shared.lifecycles import ASSESSMENT

Status = Literal["planned", "in_progress", "under_review", "completed", "cancelled"]
Result = Literal["effective", "partially_effective", "ineffective"]
RESULTS = ("effective", "partially_effective", "ineffective")
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Person = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
LongText = Annotated[str, StringConstraints(max_length=100_000)]
#: Most entities one row may link to.
MAX_LINKS = 100

EDITABLE_FIELDS = ("title", "scope", "policies", "assessor", "due_date", "findings", "result")
SNAPSHOT_FIELDS = (
    "title",
    "policies",
    "assessor",
    "due_date",
    "result",
    "status",
    "version",
    "created_by",
    "updated_by",
    "submitted_by",
)


def unique_ids(ids: list[uuid.UUID] | None) -> list[str] | None:
    """Link lists are stored as unique id strings, in the order given."""
    return None if ids is None else list(dict.fromkeys(str(i) for i in ids))


class AssessmentCreate(StrictModel):
    title: Title
    scope: LongText = ""
    #: Ids of the tenant's policies it assesses.
    policies: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_LINKS)
    #: Defaults to the caller.
    assessor: Person | None = None
    due_date: date | None = None
    findings: LongText = ""
    result: Result | None = None


class AssessmentUpdate(StrictModel):
    """Fields to change; ``version`` is the version the change is based on (or If-Match)."""

    title: Title | None = None
    scope: LongText | None = None
    policies: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LINKS)
    assessor: Person | None = None
    due_date: date | None = None
    findings: LongText | None = None
    result: Result | None = None
    version: StrictInt | None = Field(default=None, ge=1)

    @field_validator("title", "scope", "policies", "assessor", "findings", mode="before")
    @classmethod
    def _not_null(cls, value):
        # These cannot be emptied with null; due_date and result can.
        if value is None:
            raise ValueError("may not be null")
        return value


class AssessmentOut(BaseModel):
    id: str
    tenant: str
    title: str
    scope: str
    policies: list[str]
    assessor: str
    due_date: date | None
    findings: str
    result: Result | None
    status: Status
    version: int
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    #: Who sent it to under_review (they may not complete it).
    submitted_by: str | None


def assessment_body(row: Assessment) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant": row.tenant,
        "title": row.title,
        "scope": row.scope,
        "policies": list(row.policies or []),
        "assessor": row.assessor,
        "due_date": json_value(row.due_date),
        "findings": row.findings,
        "result": row.result,
        "status": row.status,
        "version": row.version,
        "created_by": row.created_by,
        "created_at": json_value(row.created_at),
        "updated_by": row.updated_by,
        "updated_at": json_value(row.updated_at),
        "submitted_by": row.submitted_by,
    }


def create_values(data: AssessmentCreate, caller: str) -> dict[str, Any]:
    values = data.model_dump()
    values["policies"] = unique_ids(data.policies)
    values["assessor"] = data.assessor or caller
    return values


def update_values(data: AssessmentUpdate) -> dict[str, Any]:
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "policies" in changes:
        changes["policies"] = unique_ids(data.policies)
    return changes


# ------------------------------------------------------------------------ rules


def contains_id(column: peewee.Field, entity_id: str) -> peewee.Expression:
    """``column`` (a JSON list of ids stored as text) holds ``entity_id``.

    The quoted id is searched as a substring (an id is a UUID, so the quotes make the
    match exact), without LIKE so nothing in it is a pattern."""
    find = peewee.fn.strpos if is_postgres(database.obj) else peewee.fn.instr
    return find(column, peewee.Value(f'"{entity_id}"', converter=False)) > 0


def missing_ids(model: type[Any], tenant: str, ids: list[str]) -> list[str]:
    """The ids of ``ids`` that name no live row of ``model`` in ``tenant``."""
    if not ids:
        return []
    found = {
        str(r.id)
        for r in model.select(model.id).where(
            model.id.in_([uuid.UUID(i) for i in ids])
            & (model.tenant == tenant)
            & model.deleted_at.is_null()
        )
    }
    return [i for i in ids if i not in found]


def check_policy_links(tenant: str, ids: list[str]) -> None:
    missing = missing_ids(Policy, tenant, ids)
    if missing:
        raise UnknownLinks(
            f"No policy {', '.join(missing)} in tenant {tenant}: link only existing policies.",
            missing=missing,
        )


def policy_owners(tenant: str, ids: list[str] | None) -> list[str]:
    """The distinct owners of the live policies of ``tenant`` among ``ids``, sorted: one
    query, none for no links."""
    if not ids:
        return []
    query = (
        Policy.select(Policy.owner)
        .where(
            Policy.id.in_([uuid.UUID(i) for i in ids])
            & (Policy.tenant == tenant)
            & Policy.deleted_at.is_null()
        )
        .distinct()
        .order_by(Policy.owner)
    )
    # peewee's stubs type the rows of .tuples() as models.
    return [owner for (owner,) in cast(Iterable[tuple[str]], query.tuples())]


def linked_policy_owners(row: Any) -> dict[str, Any]:
    """Event data of a row linked to policies: whose policies they are, for workflows
    that notify the owners (recipient ``policy_owners``)."""
    return {"policy_owners": policy_owners(row.tenant, list(row.policies or []))}


def _check_values(tenant: str, values: dict[str, Any], changed: set[str]) -> None:
    if "policies" in changed:
        check_policy_links(tenant, list(values.get("policies") or []))


def _check_move(row: Assessment, to: str) -> None:
    if to != "completed":
        return
    missing: dict[str, str] = {}
    if not row.result:
        missing["result"] = (
            "a result (effective, partially_effective or ineffective): send it back to "
            "in_progress, set it and send it to review again"
        )
    # Evidence an approver rejected, or that has expired, shows nothing; evidence not
    # yet decided on counts (its reviewer decides on it with the assessment).
    linked = Evidence.select(Evidence.id).where(
        (Evidence.tenant == row.tenant)
        & Evidence.deleted_at.is_null()
        & Evidence.status.not_in(("rejected", "expired"))
        & contains_id(Evidence.assessments, str(row.id))
    )
    if not linked.exists():
        missing["evidence"] = (
            "at least one piece of evidence linked to it that was neither rejected nor has "
            "expired (POST "
            f'/evidence with "assessments": ["{row.id}"])'
        )
    if missing:
        raise RequirementsNotMet(
            "An assessment is completed only with " + "; and ".join(missing.values()) + ".",
            missing=list(missing),
        )


_FROZEN_UNDER_REVIEW = (
    "The assessment is under review (version {version}); send it back first (POST "
    '/assessments/{id}/transitions with {{"to": "in_progress"}}), then edit it and send '
    "it to review again: its reviewer decides on the content they were asked about."
)
_FROZEN_COMPLETED = (
    "The assessment is completed (version {version}): its findings and result are a "
    "record and do not change; plan a new assessment instead."
)

ASSESSMENT_KIND = EntityKind(
    name="assessment",
    model=Assessment,
    version_model=AssessmentVersion,
    version_fk="assessment",
    lifecycle=ASSESSMENT,
    initial_status="planned",
    body=assessment_body,
    snapshot_fields=SNAPSHOT_FIELDS,
    editable_fields=EDITABLE_FIELDS,
    assignee_field="assessor",
    move_roles={
        # Completing is a decision: an editor cannot make it, or an assessor could
        # complete their own assessment.
        ("under_review", "completed"): ("approver", "service"),
        ("under_review", "in_progress"): ("editor", "approver", "service"),
    },
    decisions=frozenset({"completed"}),
    duties=lambda row: [
        ("created", row.created_by),
        ("assesses", row.assessor),
        ("sent to review", row.submitted_by),
    ],
    decision_verb="complete",
    frozen={"under_review": _FROZEN_UNDER_REVIEW, "completed": _FROZEN_COMPLETED},
    frozen_title="Assessment under review",
    submitted="under_review",
    check_move=_check_move,
    check_values=_check_values,
    event_extra=linked_policy_owners,
)


# --------------------------------------------------------------------- listing

FILTER_DOCS = (
    ("status", {"type": "string", "enum": list(ASSESSMENT.statuses)}, ""),
    ("assessor", {"type": "string"}, ""),
    ("result", {"type": "string", "enum": list(RESULTS)}, ""),
    ("policy", {"type": "string", "format": "uuid"}, "Assessments of this policy"),
    ("due_after", {"type": "string", "format": "date"}, "Due on or after this date"),
    ("due_before", {"type": "string", "format": "date"}, "Due on or before this date"),
)


def parse_date(req, name: str) -> date | None:
    raw = req.get_param(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise bad_parameter(name, f"'{name}' must be a date (YYYY-MM-DD); got {raw!r}.") from None


def parse_id(req, name: str) -> str | None:
    raw = req.get_param(name)
    if not raw:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise bad_parameter(name, f"'{name}' must be an id (a UUID); got {raw!r}.") from None


def person(req, name: str) -> str | None:
    raw = req.get_param(name)
    if raw and len(raw) > 128:
        raise bad_parameter(name, f"'{name}' may be at most 128 characters.")
    return raw or None


def filters(req) -> list[Any]:
    """The list conditions of a request's query parameters."""
    conditions: list[Any] = []
    status = parse_choice(req, "status", ASSESSMENT.statuses)
    if status:
        conditions.append(Assessment.status == status)
    assessor = person(req, "assessor")
    if assessor:
        conditions.append(Assessment.assessor == assessor)
    result = parse_choice(req, "result", RESULTS)
    if result:
        conditions.append(Assessment.result == result)
    policy = parse_id(req, "policy")
    if policy:
        conditions.append(contains_id(Assessment.policies, policy))
    due_after = parse_date(req, "due_after")
    if due_after:
        conditions.append(Assessment.due_date >= due_after)
    due_before = parse_date(req, "due_before")
    if due_before:
        conditions.append(Assessment.due_date <= due_before)
    return conditions
