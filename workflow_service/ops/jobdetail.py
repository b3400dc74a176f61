"""What the job page adds to a job's record, and the one redaction of job arguments.

A job's detail (``GET /jobs/{id}`` on the ops routes) adds to its record:

* ``arguments``: the message's arguments as the job recorded them (at most 4 KiB of
  JSON, else only their size), passed through :func:`redact_arguments`;
* ``attempts``: every run, with its worker (``host:pid``), start, duration, outcome and
  error, from the job's timeline;
* ``traceback``: the last failure's traceback (its last 8 KiB), URLs redacted;
* ``execution``: the workflow execution the job ran (its id and status; for the
  tenant's admin also its workflow and step log, from the workflow database), with
  the link to cancel it (``POST /executions/{id}/cancel``, the tenant's admins and
  editors).

Who sees what. A tenant's admin sees its tenant's arguments with secrets redacted:
values of keys naming a token, secret, password, key, signature or credential become
``***``; webhook URLs lose their credentials, query values and non-word path segments
(the redaction of :mod:`workflow_service.steps.webhook_urls`, also applied to URLs
quoted in any text); e-mail and message bodies are folded to their size. A platform
operator sees no tenant content: only ids (UUIDs), the event's type, the entity's type
and id, the actor (who caused the event), the tenant id, times and the causation
chain; every other value reads ``(tenant data)``, and the execution carries no step log.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from pydantic import BaseModel

from workflow_service.steps.webhook_urls import (
    REDACTED,
    redact_urls_in_text,
    redact_webhook_urls,
)

#: Keys whose values are secrets wherever they appear (case-insensitive, part of a key).
_SECRET_KEY = re.compile(
    r"token|secret|passw|authorization|api[_-]?key|signature|credential|private[_-]?key",
    re.IGNORECASE,
)
#: Keys whose values are bodies (an e-mail's, a message's): folded to their size.
BODY_KEYS = frozenset({"body", "html", "text", "html_body", "text_body", "content", "message"})
#: What a platform operator may see of a job's arguments (keys, at any depth).
OPERATOR_KEYS = frozenset(
    {
        "args", "kwargs", "event_id", "event_type", "entity_type", "entity_id", "tenant_id",
        "actor", "occurred_at", "causation", "schema_version", "version", "execution_id",
        "workflow_id", "delivery_id", "approval_id", "job_id", "truncated", "chars",
    }
)  # fmt: skip
HIDDEN = "(tenant data)"


def _is_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def redact_arguments(value: Any, *, operator: bool, key: str | None = None) -> Any:
    """A copy of a job's arguments as its reader may see them (see the module doc)."""
    if operator and key is not None and key not in OPERATOR_KEYS:
        return HIDDEN
    if isinstance(value, dict):
        return {k: redact_arguments(v, operator=operator, key=str(k)) for k, v in value.items()}
    if isinstance(value, list):
        # List items keep their holder's key (``args``, ``causation``).
        return [redact_arguments(v, operator=operator, key=key) for v in value]
    if key is not None and _SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        if key in BODY_KEYS:
            return f"(folded: {len(value)} characters)"
        if operator and key in ("args", None) and not _is_id(value):
            return HIDDEN
        redacted = redact_webhook_urls({key or "value": value})
        return redact_urls_in_text(next(iter(redacted.values())))
    return value


def arguments(raw_args: str | None, *, operator: bool) -> dict[str, Any] | None:
    """The job's recorded arguments, redacted for the reader (None: not recorded)."""
    if not raw_args:
        return None
    try:
        stored = json.loads(raw_args)
    except ValueError:
        return None
    if not isinstance(stored, dict):
        return None
    return redact_arguments(stored, operator=operator)


def attempts(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run of the job (from its timeline), first to last."""
    runs: dict[int, dict[str, Any]] = {}
    for event in timeline:
        number = event.get("attempt")
        state = event.get("state")
        if not isinstance(number, int) or number < 1:
            continue
        run = runs.setdefault(
            number,
            {
                "attempt": number,
                "worker": None,
                "started_at": None,
                "finished_at": None,
                "duration_ms": None,
                "outcome": "running",
                "error": None,
            },
        )
        if state == "running":
            run["worker"] = event.get("worker")
            run["started_at"] = event.get("at")
        elif state in ("retrying", "succeeded", "failed"):
            run["outcome"] = state
            run["finished_at"] = event.get("at")
            run["duration_ms"] = event.get("duration_ms")
            error = event.get("error")
            if isinstance(error, dict) and error.get("type"):
                run["error"] = {
                    "type": str(error["type"]),
                    "message": redact_urls_in_text(str(error.get("message") or "")),
                }
    return [runs[n] for n in sorted(runs)]


def execution_of(
    record: dict[str, Any], *, operator: bool, reader: Any = None
) -> dict[str, Any] | None:
    """The execution the job ran (or started, for a write's dispatch: none), with its
    step log for the tenant's admin."""
    from workflow_service.models import Execution
    from workflow_service.web.executions import _steps, _workflow_names
    from workflow_service.web.serialize import execution_body

    subject = record.get("subject") or {}
    execution_id = subject.get("execution_id")
    if not execution_id or not _is_id(str(execution_id)):
        return None
    execution = Execution.get_or_none(
        (Execution.id == execution_id) & (Execution.tenant_id == (record.get("tenant_id") or ""))
    )
    if execution is None:
        return {"id": execution_id, "href": f"/executions/{execution_id}", "status": None}
    body: dict[str, Any] = {
        "id": execution.id,
        "href": f"/executions/{execution.id}",
        "status": execution.status,
        "cancel_href": f"/executions/{execution.id}/cancel",
    }
    if not operator:
        name = _workflow_names([execution]).get(execution.workflow_id)
        full = execution_body(execution, _steps(execution), reader, name)
        body["workflow_name"] = full.get("workflow_name")
        body["steps"] = full.get("steps")
    return body


class AttemptOut(BaseModel):
    attempt: int
    #: ``host:pid`` of the worker process that ran it.
    worker: str | None
    started_at: str | None
    finished_at: str | None
    duration_ms: int | None
    #: running, retrying (it failed and will run again), succeeded or failed
    outcome: str
    error: dict[str, str] | None


class ExecutionRefOut(BaseModel):
    id: str
    href: str
    status: str | None
    cancel_href: str | None = None
    #: The tenant's admin only.
    workflow_name: str | None = None
    #: The step log (every attempt of every step); the tenant's admin only.
    steps: list[dict[str, Any]] | None = None


class JobPageAdditions(BaseModel):
    """What ``GET /jobs/{id}`` on the ops routes adds for the job page."""

    #: ``{"args": [...], "kwargs": {...}}`` redacted for the reader; null if not recorded.
    arguments: dict[str, Any] | None = None
    attempts: list[AttemptOut] = []
    #: The last failure's traceback (its last 8 KiB).
    traceback: str | None = None
    worker: str | None = None
    execution: ExecutionRefOut | None = None


def add_detail(
    record: dict[str, Any], raw: dict[str, str], *, operator: bool, reader: Any = None
) -> dict[str, Any]:
    """``record`` (from the store) with the job page's additions."""
    record["arguments"] = arguments(raw.get("args"), operator=operator)
    record["attempts"] = attempts(record.get("timeline") or [])
    trace = raw.get("traceback") or ""
    record["traceback"] = redact_urls_in_text(trace) if trace else None
    record["worker"] = raw.get("worker") or None
    record["execution"] = execution_of(record, operator=operator, reader=reader)
    return record
