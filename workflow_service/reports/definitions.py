"""What a report request may ask for: kinds, formats and each kind's filters.

The same models validate ``POST /reports`` (a 422 naming ``filters.<name>``), the
``generate_report`` step's options when a workflow is saved, and the message the actor
receives (a message that fails is not retried).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

KINDS = ("policy_status", "overdue_reviews", "approval_turnaround")
FORMATS = ("csv", "xlsx", "pdf")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
#: Statuses a policy can have (the api refuses others; checked here for a clear 422).
POLICY_STATUSES = ("draft", "in_review", "approved", "published", "archived")

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Filters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def described(self) -> dict[str, Any]:
        """The filters set, as text for the report's heading."""
        return {
            k: (v.isoformat() if isinstance(v, date | datetime) else v)
            for k, v in self.model_dump().items()
            if v is not None
        }


class PolicyStatusFilters(_Filters):
    status: Literal[POLICY_STATUSES] | None = None  # type: ignore[valid-type]
    policy_type: Name | None = None
    owner: Name | None = None


class OverdueReviewsFilters(_Filters):
    #: Policies whose next review date is past or at most this many days ahead.
    within_days: int = Field(default=0, ge=0, le=366)
    policy_type: Name | None = None
    owner: Name | None = None


class ApprovalTurnaroundFilters(_Filters):
    #: Decisions made on or after ``from`` and before ``until`` (dates, or times in UTC).
    from_: date | datetime | None = Field(default=None, alias="from")
    until: date | datetime | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("from_", "until", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        """A time as naive UTC before the union sees it: pydantic reads a time at
        midnight as a date, which would drop its offset."""
        moment = value
        if isinstance(value, str) and len(value.strip()) > 10:
            try:
                moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                return value  # pydantic's own message says what is wrong
        if isinstance(moment, datetime) and moment.tzinfo is not None:
            try:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            except OverflowError:
                raise ValueError("is out of range") from None
        return moment

    @model_validator(mode="after")
    def _ordered(self) -> ApprovalTurnaroundFilters:
        start, end = as_datetime(self.from_), as_datetime(self.until)
        if start is not None and end is not None and start >= end:
            raise ValueError("'from' must be before 'until'")
        return self

    def described(self) -> dict[str, Any]:
        shown = {"from": self.from_, "until": self.until}
        return {k: v.isoformat() for k, v in shown.items() if v is not None}


FILTERS: dict[str, type[_Filters]] = {
    "policy_status": PolicyStatusFilters,
    "overdue_reviews": OverdueReviewsFilters,
    "approval_turnaround": ApprovalTurnaroundFilters,
}


def as_datetime(value: datetime | date | None) -> datetime | None:
    """A filter's date or time as naive UTC (a date is its midnight)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    return datetime(value.year, value.month, value.day)


class ReportSpec(BaseModel):
    """A report request: ``{"kind", "format", "filters"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal[KINDS]  # type: ignore[valid-type]
    format: Literal[FORMATS] = "csv"  # type: ignore[valid-type]
    filters: dict[str, Any] = Field(default_factory=dict)

    def parsed_filters(self) -> _Filters:
        return FILTERS[self.kind].model_validate(self.filters)


def filter_errors(kind: str, filters: Any) -> list[dict[str, str]]:
    """Problems of ``filters`` for ``kind`` as ``[{"field", "message"}]``."""
    from pydantic import ValidationError

    if not isinstance(filters, dict):
        return [{"field": "filters", "message": "must be an object"}]
    try:
        FILTERS[kind].model_validate(filters)
    except ValidationError as exc:
        # Filters are flat: an error names its filter (not which member of a union
        # such as "a date or a time" failed), once, with every message.
        messages: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False, include_input=False):
            field = f"filters.{err['loc'][0]}" if err["loc"] else "filters"
            message = "unknown filter" if err["type"] == "extra_forbidden" else err["msg"]
            messages.setdefault(field, []).append(message)
        return [{"field": f, "message": " or ".join(m)} for f, m in messages.items()]
    return []
