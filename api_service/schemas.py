"""Request and response bodies. Request models refuse unknown fields; answers are
serialised through the response models (their field order is the answers' key order),
which also describe them in the OpenAPI document."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

from shared.http import StrictModel

Status = Literal["draft", "in_review", "approved", "published", "archived"]
ReviewFrequency = Literal["monthly", "quarterly", "semiannual", "annual", "biennial"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Owner = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Content = Annotated[str, StringConstraints(max_length=100_000)]
Comment = Annotated[str, StringConstraints(max_length=2_000)]

#: Fields a PATCH may change (status moves only through transitions).
EDITABLE_FIELDS = (
    "title",
    "policy_type",
    "content",
    "owner",
    "review_frequency",
    "next_review_date",
    "effective_date",
    "tags",
)


def _unique_tags(tags: list[str] | None) -> list[str] | None:
    return None if tags is None else list(dict.fromkeys(tags))


class PolicyCreate(StrictModel):
    title: Title
    policy_type: Name
    content: Content = ""
    #: Defaults to the caller.
    owner: Owner | None = None
    review_frequency: ReviewFrequency | None = None
    next_review_date: date | None = None
    effective_date: date | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)

    _tags = field_validator("tags")(_unique_tags)


class PolicyUpdate(StrictModel):
    """Fields to change; ``version`` is the version the change is based on (or If-Match)."""

    title: Title | None = None
    policy_type: Name | None = None
    content: Content | None = None
    owner: Owner | None = None
    review_frequency: ReviewFrequency | None = None
    next_review_date: date | None = None
    effective_date: date | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    version: StrictInt | None = Field(default=None, ge=1)

    _tags = field_validator("tags")(_unique_tags)

    @field_validator("title", "policy_type", "content", "owner", "tags", mode="before")
    @classmethod
    def _not_null(cls, value):
        # These columns cannot be emptied with null; clearable fields are the dates
        # and review_frequency.
        if value is None:
            raise ValueError("may not be null")
        return value


class TransitionRequest(StrictModel):
    to: Status
    comment: Comment | None = None
    #: Optional: refuse the move if the policy changed since this version.
    version: StrictInt | None = Field(default=None, ge=1)


class JobLink(BaseModel):
    id: str
    href: str


class PolicyOut(BaseModel):
    id: str
    tenant: str
    title: str
    policy_type: str
    content: str
    owner: str
    status: Status
    version: int
    review_frequency: ReviewFrequency | None
    next_review_date: date | None
    effective_date: date | None
    tags: list[str]
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    #: Who last sent it to review (they may not approve it).
    submitted_by: str | None


class PolicyWriteOut(PolicyOut):
    #: The jobs (event messages) this write started; follow them at ``href``.
    jobs: list[JobLink]


class PolicyDeletedOut(BaseModel):
    id: str
    deleted: bool
    jobs: list[JobLink]


class PolicyListOut(BaseModel):
    items: list[PolicyOut]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


class PolicyVersionOut(BaseModel):
    version: int
    change: str
    #: Who made the change; for a workflow's move to approved, who approved.
    changed_by: str
    #: The service that made it for them (``workflow-service``), else null.
    via: str | None = None
    changed_at: datetime
    snapshot: dict


class PolicyVersionListOut(BaseModel):
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None
    items: list[PolicyVersionOut]


class PolicyRefusalOut(BaseModel):
    from_status: Status
    to_status: Status
    refused_by: str
    #: The people the workflow service acted for (its deciders); empty for a person.
    on_behalf_of: list[str]
    reason: str
    refused_at: datetime


class PolicyRefusalListOut(BaseModel):
    items: list[PolicyRefusalOut]


class TenantSettingsPatch(StrictModel):
    #: True: only the workflow service (a workflow's approval) moves policies to approved.
    approval_requires_workflow: StrictBool


class TenantSettingsOut(BaseModel):
    tenant: str
    approval_requires_workflow: bool
    #: Who last changed them; null while the tenant has the defaults.
    updated_by: str | None
    updated_at: datetime | None
