"""Rows as the JSON the admin API answers.

Bodies that may hold a webhook URL (definitions, step outputs, errors) take the
``reader``: roles below editor get them through the one redaction of webhook URLs
(:func:`workflow_service.steps.webhook_urls.for_reader`). ``None`` means a writer.
"""

from __future__ import annotations

from typing import Any

from workflow_service.models import Execution, Notification, StepRun, Task, Workflow
from workflow_service.steps.webhook_urls import for_reader


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def workflow_body(w: Workflow, reader: Any = None) -> dict[str, Any]:
    body = {
        "id": w.id,
        "tenant_id": w.tenant_id,
        **w.definition(),
        "status": w.status,
        "version": w.version,
        "created_by": w.created_by,
        "updated_by": w.updated_by,
        "created_at": _iso(w.created_at),
        "updated_at": _iso(w.updated_at),
    }
    return body if reader is None else for_reader(reader, body)


def job_ref(job_id: str) -> dict[str, str]:
    return {"id": job_id, "href": f"/jobs/{job_id}"}


def step_body(s: StepRun, reader: Any = None) -> dict[str, Any]:
    body = {
        "key": s.key,
        "position": s.position,
        "kind": s.kind,
        "attempt": s.attempt,
        "status": s.status,
        "output": s.output,
        "error": s.error,
        "started_at": _iso(s.started_at),
        "finished_at": _iso(s.finished_at),
    }
    return body if reader is None else for_reader(reader, body)


def execution_body(
    e: Execution,
    steps: list[StepRun] | None = None,
    reader: Any = None,
    workflow_name: str | None = None,
) -> dict[str, Any]:
    data = (e.event or {}).get("data")
    title = data.get("title") if isinstance(data, dict) else None
    body = {
        "id": e.id,
        "tenant_id": e.tenant_id,
        "workflow_id": e.workflow_id,
        "workflow_name": workflow_name,
        "workflow_version": e.workflow_version,
        "event_id": e.event_id,
        "event_type": (e.event or {}).get("event_type"),
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        # As the triggering event saw it (the entity may have been renamed since).
        "entity_title": title if isinstance(title, str) else None,
        "status": e.status,
        "attempts": e.attempts,
        "error": e.error,
        "job": job_ref(e.job_id),
        "created_at": _iso(e.created_at),
        "started_at": _iso(e.started_at),
        "finished_at": _iso(e.finished_at),
    }
    if steps is not None:
        body["steps"] = [step_body(s) for s in steps]
    return body if reader is None else for_reader(reader, body)


def task_body(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "title": t.title,
        "description": t.description,
        "assignee": t.assignee,
        "assignee_role": t.assignee_role,
        "entity_type": t.entity_type,
        "entity_id": t.entity_id,
        "execution_id": t.execution_id,
        "status": t.status,
        "due_at": _iso(t.due_at),
        "created_at": _iso(t.created_at),
        "completed_at": _iso(t.completed_at),
        "completed_by": t.completed_by,
    }


def notification_body(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "subject": n.subject,
        "body": n.body,
        "recipient": n.recipient,
        "recipient_role": n.recipient_role,
        "entity_type": n.entity_type,
        "entity_id": n.entity_id,
        "execution_id": n.execution_id,
        "created_at": _iso(n.created_at),
        "read_at": _iso(n.read_at),
    }
