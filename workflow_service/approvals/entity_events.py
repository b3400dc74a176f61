"""Entity events close the approvals they make stale, on the dispatch path.

Every event reaches :func:`on_event` before its workflows are matched (even when none
match). One indexed query finds the entity's pending approvals; with none, that is
all it costs.

* ``<entity>.deleted``, or a status change to one that ends the entity's life (the
  lifecycle's ``ends``: a policy's ``archived``, an assessment's ``cancelled``): every
  pending approval of the entity closes (``cancelled``, with the reason), and every
  unfinished execution for the entity is cancelled, except those this event itself
  starts.
* any other change (a status change, an update): pending approvals asked for another
  status, or for an older version, close as stale, and the executions waiting on them
  are cancelled.

Every execution stopped here is ended through :mod:`workflow_service.ending`, so its
run job stops reading ``waiting`` (the hook is bound to the engine's broker, see
``features.make_event_hooks``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.db import utcnow
from shared.events import Event
from shared.lifecycles import lifecycle_of
from workflow_service import ending
from workflow_service.approvals import service
from workflow_service.approvals.models import ApprovalRequest, ApprovalStatus
from workflow_service.db import database
from workflow_service.models import Execution, ExecutionStatus


def final_statuses(entity_type: str) -> tuple[str, ...]:
    """Statuses that end an entity's life: its approvals and executions stop."""
    lifecycle = lifecycle_of(entity_type)
    return lifecycle.ends if lifecycle is not None else ()


def on_event(event: Event, now: datetime | None = None, *, broker: Any = None) -> int:
    """Close what ``event`` makes stale; returns how many approvals closed.

    ``broker`` records job status: the stopped executions' run jobs are told."""
    kind = event.event_type.rpartition(".")[2]
    if kind not in ("deleted", "status_changed", "updated"):
        return 0
    now = now or utcnow()
    status = event.data.get("status")
    ends = kind == "deleted" or (
        kind == "status_changed" and status in final_statuses(event.entity_type)
    )
    what = f"{event.entity_type} {event.entity_id}"
    pending = list(
        ApprovalRequest.select(
            ApprovalRequest.id, ApprovalRequest.entity_version, ApprovalRequest.entity_status
        ).where(
            (ApprovalRequest.tenant_id == event.tenant_id)
            & (ApprovalRequest.entity_type == event.entity_type)
            & (ApprovalRequest.entity_id == event.entity_id)
            & (ApprovalRequest.status == ApprovalStatus.PENDING)
        )
    )
    closed = 0
    if ends:
        reason = f"the {what} was {'deleted' if kind == 'deleted' else status}"
        closed = sum(service.close(r.id, reason, now, broker=broker) for r in pending)
        _cancel_executions(event, reason, now, broker)
        return closed
    version = event.data.get("version")
    version = version if isinstance(version, int) and not isinstance(version, bool) else None
    for request in pending:
        other_status = (
            kind == "status_changed"
            and request.entity_status is not None
            and isinstance(status, str)
            and status != request.entity_status
        )
        older = (
            version is not None
            and request.entity_version is not None
            and request.entity_version < version
        )
        if other_status or older:
            reason = (
                f"stale: the {what} moved on to version {version} ({status}); the approval "
                f"was asked for version {request.entity_version} ({request.entity_status})"
            )
            closed += service.close(request.id, reason, now, broker=broker)
    return closed


def _cancel_executions(event: Event, reason: str, now: datetime, broker: Any) -> int:
    """Cancel the entity's unfinished executions but those ``event`` starts (a
    redelivered event must not cancel its own)."""
    why = f"cancelled: {reason}"
    with database.atomic():
        unfinished = [
            e.id
            for e in Execution.select(Execution.id).where(
                (Execution.tenant_id == event.tenant_id)
                & (Execution.entity_type == event.entity_type)
                & (Execution.entity_id == event.entity_id)
                & (Execution.event_id != event.event_id)
                & Execution.status.not_in(ExecutionStatus.FINAL)
            )
        ]
        ended = [ending.stop(e, ExecutionStatus.CANCELLED, why, now, error=why) for e in unfinished]
    ending.report(broker, ended)
    return sum(e is not None for e in ended)
