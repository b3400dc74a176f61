"""The public shape of job records, shared by both services' ``/jobs`` routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dramatiq
from pydantic import BaseModel, ConfigDict

#: Longest error message kept; the type and the first words are what an operator needs,
#: and a long message is usually a payload or a response body that does not belong here.
MAX_ERROR_CHARS = 300


def iso(ms: int | str | None) -> str | None:
    """Epoch milliseconds as an ISO 8601 UTC timestamp (None and "" stay None)."""
    if ms in (None, ""):
        return None
    return datetime.fromtimestamp(int(float(ms)) / 1000, UTC).isoformat(timespec="milliseconds")


def error_summary(exc: BaseException | None) -> tuple[str, str]:
    """Type and a short message of an error, looking through Dramatiq's Retry wrapper.

    :class:`shared.broker.CatalogRetries` turns an unexpected error into
    ``Retry(delay=...)`` with the original as ``__cause__``; the record shows the
    original, since that is what an operator has to fix. Only ``str(exc)`` is kept,
    cut short: never a traceback, arguments or payloads.
    """
    if exc is None:
        return "", ""
    cause = exc.__cause__ if isinstance(exc, dramatiq.Retry) and exc.__cause__ else exc
    message = str(cause)
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "\u2026"
    return type(cause).__name__, message


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def present(data: dict[str, str]) -> dict[str, Any]:
    """The public shape of a stored record (times as ISO 8601 UTC)."""
    error = None
    if data.get("error_type"):
        error = {"type": data["error_type"], "message": data.get("error_message", "")}
    progress = None
    if data.get("progress", "") != "":
        progress = {
            "percent": int(data["progress"]),
            "message": data.get("progress_message", ""),
            "at": iso(data.get("progress_at")),
        }
    job_id = data.get("id", "")
    return {
        "id": job_id,
        "href": f"/jobs/{job_id}",
        "queue": data.get("queue") or None,
        "actor": data.get("actor") or None,
        "tenant_id": data.get("tenant") or None,
        "state": data.get("state") or None,
        "attempt": _int(data.get("attempt")) or 0,
        "max_attempts": _int(data.get("max_attempts")),
        "enqueued_at": iso(data.get("enqueued_at")),
        "started_at": iso(data.get("started_at")),
        "finished_at": iso(data.get("finished_at")),
        "updated_at": iso(data.get("updated_at")),
        "eta": iso(data.get("eta")),
        "next_retry_at": iso(data.get("next_retry_at")),
        "error": error,
        "progress": progress,
        "result": {"backend_key": data["result_key"]} if data.get("result_key") else None,
        "parent": data.get("parent") or None,
        "retry_of": data.get("retry_of") or None,
        "retried_as": data.get("retried_as") or None,
    }


def present_event(event: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry with ISO times (its internal rank dropped)."""
    event.pop("r", None)
    for name in ("at", "next_retry_at", "eta"):
        if name in event:
            event[name] = iso(event[name])
    return event


class JobErrorOut(BaseModel):
    type: str
    message: str


class JobProgressOut(BaseModel):
    percent: int
    message: str
    at: str | None


class JobResultOut(BaseModel):
    #: Key of the result in Dramatiq's Results backend (the record never copies it).
    backend_key: str


class JobOut(BaseModel):
    id: str
    href: str
    queue: str | None
    actor: str | None
    tenant_id: str | None
    state: str | None
    #: The current or last attempt (0 before the first run).
    attempt: int
    max_attempts: int | None
    enqueued_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str | None
    #: When a message sent with a delay is due.
    eta: str | None
    next_retry_at: str | None
    #: The last error (kept after a later attempt succeeds).
    error: JobErrorOut | None
    progress: JobProgressOut | None
    result: JobResultOut | None
    parent: str | None
    retry_of: str | None
    retried_as: str | None


class TimelineEntryOut(BaseModel):
    """One step of a job's life; retrying entries carry the error and the next attempt."""

    model_config = ConfigDict(extra="allow")

    state: str
    at: str | None
    attempt: int | None = None


class ChildOut(BaseModel):
    id: str
    state: str
    actor: str | None
    queue: str | None
    progress: int | None
    href: str


class ChildrenOut(BaseModel):
    total: int
    by_state: dict[str, int]
    items: list[ChildOut]


class JobDetailOut(JobOut):
    timeline: list[TimelineEntryOut]
    children: ChildrenOut


class JobPageOut(BaseModel):
    items: list[JobOut]
    next_cursor: str | None
