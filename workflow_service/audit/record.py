"""The one call every audited change makes: :func:`record`, inside its transaction.

It inserts a pending row (``INSERT ... ON CONFLICT DO NOTHING`` on tenant + source id),
so the audit row commits or rolls back with the change it describes, a redelivered
source adds nothing, and no Redis round trip sits on the hot path. The tenants written
to are remembered per thread; the web and worker middlewares of :mod:`.kick` send the
chain builder after the request or message (after the commit).
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from shared.db import utcnow
from shared.sql import CompiledInsert
from workflow_service.audit.models import AuditPending
from workflow_service.db import database
from workflow_service.kernel.hooks import SYSTEM_ACTOR

#: A digest longer than this (as JSON) keeps only its keys.
MAX_DIGEST_CHARS = 8000
#: The tenant of platform-wide actions (an operator pausing a queue for everyone).
PLATFORM_TENANT = "_platform"

_local = threading.local()
#: Rendered once (see shared.sql): this insert is on every audited hot path.
_INSERT_PENDING = CompiledInsert(AuditPending, ignore_conflicts=True)
_DIGEST = [f.name for f in _INSERT_PENDING.fields].index("digest")


def act_as(actor: str | None) -> None:
    """Who this thread acts for until changed (a request's caller; see :mod:`.kick`):
    the actor of entries whose source does not name one."""
    _local.actor = actor


def normalise(digest: Any) -> str:
    """``digest`` as the JSON text stored (a dict; over the limit, its keys only)."""
    value = digest if digest is not None else {}
    if not isinstance(value, dict):
        value = {"value": value}
    text = json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_DIGEST_CHARS:
        keys = [str(k) for k in sorted(value, key=str)][:100]
        text = json.dumps({"truncated": True, "keys": keys}, separators=(",", ":"))
    return text


def record(
    tenant_id: str | None,
    source_id: str,
    action: str,
    *,
    actor: str | None,
    entity_type: str,
    entity_id: Any,
    digest: Any = None,
    at: datetime | None = None,
) -> None:
    """Note one audited event; a second call with the same tenant and source is a no-op."""
    tenant = tenant_id or PLATFORM_TENANT
    now = utcnow()
    params = _INSERT_PENDING.params(
        {
            "tenant_id": tenant[:64],
            "source_id": source_id[:200],
            "occurred_at": at or now,
            "actor": (actor or getattr(_local, "actor", None) or SYSTEM_ACTOR)[:128],
            "action": action[:64],
            "entity_type": (entity_type or "")[:32],
            "entity_id": str(entity_id if entity_id is not None else "")[:64],
            "digest": None,
            "created_at": now,
        }
    )
    params[_DIGEST] = normalise(digest)  # already JSON text
    _INSERT_PENDING.run(database, params)
    touched = getattr(_local, "tenants", None)
    if touched is None:
        touched = _local.tenants = set()
    touched.add(tenant)


def take_touched() -> set[str]:
    """The tenants this thread recorded for since the last call (and forget them)."""
    touched = getattr(_local, "tenants", None) or set()
    _local.tenants = set()
    return touched


#: Event data fields an api event's entry keeps (the rest is the entity's snapshot,
#: which the api's own versions hold).
EVENT_FIELDS = (
    "status",
    "old_status",
    "version",
    "title",
    "changed_fields",
    "changed",
    "comment",
    "policy_type",
)


def event_digest(event: Any) -> dict[str, Any]:
    data = event.data if isinstance(event.data, dict) else {}
    digest = {name: data[name] for name in EVENT_FIELDS if name in data}
    digest["event_type"] = event.event_type
    if event.causation:
        digest["causation"] = list(event.causation)[-5:]
    return digest


def record_event(event: Any) -> None:
    """An api event as a dispatch actor accepts it (its event id is the source)."""
    record(
        event.tenant_id,
        f"event:{event.event_id}",
        event.event_type,
        actor=event.actor or SYSTEM_ACTOR,
        entity_type=event.entity_type,
        entity_id=event.entity_id,
        digest=event_digest(event),
        at=_event_time(event.occurred_at),
    )


def _event_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def record_execution(execution: Any, what: str, digest: Any = None, actor: str | None = None):
    """``execution.<what>`` (started, completed, failed, cancelled), once per execution."""
    record(
        execution.tenant_id,
        f"execution:{execution.id}:{what}",
        f"execution.{what}",
        actor=actor,
        entity_type="execution",
        entity_id=execution.id,
        digest={
            "workflow_id": str(getattr(execution, "workflow_id", "") or ""),
            "entity": f"{execution.entity_type}:{execution.entity_id}",
            **(digest or {}),
        },
    )


def record_step(execution: Any, run: Any, status: str, *, output: Any = None, error=None):
    """One attempt of one step ended (completed, waiting or failed)."""
    digest: dict[str, Any] = {
        "execution_id": execution.id,
        "key": run.key,
        "kind": run.kind,
        "attempt": run.attempt,
        "status": status,
    }
    if isinstance(output, dict):
        digest["output_keys"] = sorted(str(k) for k in output)[:50]
    if error:
        digest["error"] = str(error)[:500]
    record(
        execution.tenant_id,
        f"step:{run.id}:{status}",
        f"step.{status}",
        actor=SYSTEM_ACTOR,
        entity_type="execution",
        entity_id=execution.id,
        digest=digest,
    )


def record_workflow(workflow: Any, what: str, actor: str | None, **digest: Any) -> None:
    """``workflow.<what>``: created, updated, activated, deactivated, archived, deleted.
    Each change makes a version, so the version names the source (a delete, the end)."""
    tag = "deleted" if what == "deleted" else f"v{workflow.version}"
    record(
        workflow.tenant_id,
        f"workflow:{workflow.id}:{tag}",
        f"workflow.{what}",
        actor=actor,
        entity_type="workflow",
        entity_id=workflow.id,
        digest={
            "name": workflow.name,
            "version": workflow.version,
            "status": workflow.status,
            "trigger": workflow.trigger,
            "entity_type": workflow.entity_type,
            **digest,
        },
    )


def record_approval(request: Any, what: str, actor: str | None, **details: Any) -> None:
    """``approval.<what>``: requested, decided (one per approver's slot), refused
    (one per refusal), closed."""
    slot = details.pop("slot", None)
    if slot is not None:
        source = f"approval_slot:{slot.id}"
        details.update(stage=slot.stage + 1, decision=slot.status, comment=slot.comment)
    elif what == "refused":
        source = f"approval:{request.id}:refused:{uuid.uuid4()}"
    else:
        source = f"approval:{request.id}:{what}"
    record(
        request.tenant_id,
        source,
        f"approval.{what}",
        actor=actor,
        entity_type="approval",
        entity_id=request.id,
        digest={
            "entity": f"{request.entity_type}:{request.entity_id}",
            "entity_version": request.entity_version,
            "execution_id": str(request.execution_id),
            **details,
        },
    )


def record_delivery(delivery: Any, claim_token: str) -> None:
    """A delivery's attempt ended: ``delivery.sent``, ``delivery.failed`` or, failed
    with a re-send planned, ``delivery.parked``. One per claim (its token)."""
    what = delivery.status
    if what == "failed" and delivery.next_resend_at is not None:
        what = "parked"
    recipient = delivery.recipient
    if delivery.channel == "webhook":
        # A webhook's recipient is its URL, which may carry credentials: the host only.
        recipient = urlsplit(recipient).hostname or "webhook"
    record(
        delivery.tenant_id,
        f"delivery:{delivery.id}:{claim_token}",
        f"delivery.{what}",
        actor=SYSTEM_ACTOR,
        entity_type="delivery",
        entity_id=delivery.id,
        digest={
            "channel": delivery.channel,
            "recipient": recipient,
            "attempts": delivery.attempts,
            "response_status": delivery.response_status,
            "execution_id": str(delivery.execution_id),
            "step_key": delivery.step_key,
        },
    )


def record_task(tenant_id: str, task_id: str, what: str, actor: str | None, **digest: Any):
    """``task.created`` (by a step) or ``task.completed`` (by its assignee)."""
    record(
        tenant_id,
        f"task:{task_id}:{what}",
        f"task.{what}",
        actor=actor,
        entity_type="task",
        entity_id=task_id,
        digest=digest,
    )


def record_user(tenant_id: str, user_id: str, what: str, **digest: Any) -> None:
    """``user.created``, ``user.updated`` or ``user.deleted`` (by an admin, or an
    import: the actor is whoever this thread acts for)."""
    record(
        tenant_id,
        f"user:{user_id}:{what}:{uuid.uuid4()}",
        f"user.{what}",
        actor=None,
        entity_type="user",
        entity_id=user_id,
        digest=digest,
    )
