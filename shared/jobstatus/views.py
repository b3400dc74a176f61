"""The public shape of job records, shared by both services' ``/jobs`` routes."""

from __future__ import annotations

import json
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


def _json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _waiting(marker: Any) -> dict[str, Any] | None:
    """A waiting marker as shown: who and what the job's work waits for."""
    if not isinstance(marker, dict):
        return None
    approvers = marker.get("approvers")
    return {
        "status": str(marker.get("status") or "waiting"),
        "execution_id": marker.get("execution_id"),
        "approval_id": marker.get("approval_id"),
        "approvers": [str(a) for a in approvers] if isinstance(approvers, list) else [],
    }


def _tree_cause(data: dict[str, str]) -> dict[str, Any] | None:
    cause = _json(data.get("tree_cause"))
    if not isinstance(cause, dict) or not cause.get("job"):
        return None
    error = cause.get("error")
    return {
        "job_id": str(cause["job"]),
        "href": f"/jobs/{cause['job']}",
        "actor": cause.get("actor") or None,
        "error": (
            {"type": str(error.get("type", "")), "message": str(error.get("message", ""))}
            if isinstance(error, dict) and error.get("type")
            else None
        ),
        "waiting": _waiting(cause.get("waiting")),
        "ended": _ended(cause.get("ended")),
    }


def _ended(ended: Any) -> dict[str, Any] | None:
    """How an execution was ended from outside its run (cancelled, failed) and why."""
    if not isinstance(ended, dict) or not ended.get("status"):
        return None
    return {"status": str(ended["status"]), "reason": str(ended.get("reason") or "")}


def _subject(data: dict[str, str]) -> dict[str, Any] | None:
    subject = _json(data.get("subject"))
    if not isinstance(subject, dict):
        return None
    return {name: subject.get(name) for name in SUBJECT_FIELDS}


#: What a job is about, as the workflow service records it (see ``report_subject``).
SUBJECT_FIELDS = (
    "workflow_id", "workflow_name", "execution_id", "entity_type", "entity_id", "entity_title",
)  # fmt: skip


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
        # The value itself is read for one job's view (JobStatusStore.get); the key in
        # the Results backend stays internal.
        "result": {"available": True, "value": None} if data.get("result_key") else None,
        "parent": data.get("parent") or None,
        "retry_of": data.get("retry_of") or None,
        "retried_as": data.get("retried_as") or None,
        "tree_state": data.get("tree_state") or data.get("state") or None,
        "tree_cause": _tree_cause(data),
        "waiting": None if data.get("waiting_ended") else _waiting(_json(data.get("waiting"))),
        "subject": _subject(data),
    }


def without_tenant_data(record: dict[str, Any]) -> dict[str, Any]:
    """A record as platform operators see it: ids, states and errors, but no entity
    titles, workflow names, people or result values (tenant data)."""
    if record.get("subject"):
        record["subject"] = {**record["subject"], "workflow_name": None, "entity_title": None}
    for holder in (record, record.get("tree_cause") or {}):
        if holder.get("waiting"):
            holder["waiting"] = {**holder["waiting"], "approvers": []}
    if record.get("result"):
        record["result"] = {**record["result"], "value": None}
    return record


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
    #: The job stored a return value in Dramatiq's Results backend.
    available: bool
    #: That value: in ``/jobs/{id}`` while the backend keeps it, null in lists.
    value: Any = None


class WaitingOut(BaseModel):
    """What a job's work waits for: a person's decision."""

    #: ``waiting_approval``
    status: str
    execution_id: str | None
    approval_id: str | None
    #: Who may decide (user ids); empty for platform operators.
    approvers: list[str]


class EndedOut(BaseModel):
    """An execution ended from outside its run: a person cancelled it, its entity was
    deleted, archived or moved on, or nobody is left to decide its approval."""

    #: ``cancelled`` or ``failed``
    status: str
    reason: str


class TreeCauseOut(BaseModel):
    """The job in a tree that decides its ``tree_state`` (the job itself or below)."""

    job_id: str
    href: str
    actor: str | None
    #: For ``failed`` and ``retrying``: its error.
    error: JobErrorOut | None
    #: For ``waiting``: whom it waits for.
    waiting: WaitingOut | None
    #: For ``cancelled`` (and ``failed`` decided outside the run): how the job's
    #: execution was ended, and why.
    ended: EndedOut | None


class SubjectOut(BaseModel):
    """What the job is about (titles and names are null for platform operators)."""

    workflow_id: str | None
    workflow_name: str | None
    execution_id: str | None
    entity_type: str | None
    entity_id: str | None
    entity_title: str | None


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
    #: The job and every job below it, rolled up: failed > retrying > waiting > running
    #: > queued > cancelled > succeeded (succeeded only when every descendant succeeded).
    tree_state: str | None
    tree_cause: TreeCauseOut | None
    #: This job's own work waits for a person (an execution parked for approval).
    waiting: WaitingOut | None
    subject: SubjectOut | None


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
    tree_state: str | None
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
