"""A row's checks: the api's field rules for a policy, mirrored here.

The workflow service does not import the api's code, so the rules of
``PolicyCreate`` / ``PolicyUpdate`` are repeated in :class:`PolicyRow` (lengths,
review frequencies, dates, tags). The api stays the judge: a real run sends each row
and reports what the api answered, so a rule that drifts shows up as the api's message.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

ReviewFrequency = Literal["monthly", "quarterly", "semiannual", "annual", "biennial"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Owner = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Content = Annotated[str, StringConstraints(max_length=100_000)]

#: Tags in one cell are separated by ";" or ",".
TAG_SEPARATORS = re.compile(r"[;,]")


class PolicyRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID | None = None
    title: Title
    policy_type: Name
    content: Content | None = None
    owner: Owner | None = None
    review_frequency: ReviewFrequency | None = None
    next_review_date: date | None = None
    effective_date: date | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    #: The version the row was exported at (rows naming a policy only).
    version: int | None = Field(default=None, ge=1)


def _cells(row: dict[str, str | None]) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
    if "tags" in values:
        tags = [t.strip() for t in TAG_SEPARATORS.split(values["tags"]) if t.strip()]
        values["tags"] = list(dict.fromkeys(tags))
    return values


def check_row(row: dict[str, str | None]) -> tuple[PolicyRow | None, list[dict[str, str]]]:
    """The row as a :class:`PolicyRow` and no errors, or None and its errors
    (``[{"column", "message"}]``)."""
    try:
        return PolicyRow.model_validate(_cells(row)), []
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            column = str(error["loc"][0]) if error["loc"] else ""
            message = error["msg"]
            if error["type"] == "missing":
                message = "required; the cell is empty"
            elif column == "review_frequency":
                message = "must be one of monthly, quarterly, semiannual, annual, biennial"
            elif column in ("next_review_date", "effective_date"):
                message = "must be a date (YYYY-MM-DD)"
            elif column == "id":
                message = "must be the id (a UUID) of a policy of this tenant"
            elif column == "version":
                message = "must be a version number (1 or more)"
            errors.append({"column": column, "message": message})
        return None, errors


def api_body(row: PolicyRow) -> dict[str, Any]:
    """The JSON body of ``POST /policies`` (or, for a row with an id, ``PATCH``): the
    row's filled cells, dates as ISO text."""
    body = row.model_dump(mode="json", exclude_none=True, exclude={"id", "version"})
    return body


def differs(body: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when ``body`` would change the policy the api answered with."""
    for key, value in body.items():
        have = current.get(key)
        if key == "tags":
            if list(value) != list(have or []):
                return True
        elif value != have:
            return True
    return False
