"""Ending an execution from outside its run, and telling its job.

Whatever ends an execution without the engine's run doing it - a person's cancel, an
entity deleted, archived or moved on, a stale decision, an approval stage nobody is
left to decide, retries exhausted - goes through :func:`stop` and then :func:`report`:
one conditional UPDATE, and, once the caller's transaction has committed, a note on
the execution's run job (``ended``: ``cancelled`` or ``failed``, and why) that closes
its waiting marker. The write's job tree then reads ``cancelled`` or ``failed``
instead of ``waiting`` forever (see :mod:`shared.jobstatus.store`). :func:`report` also
fires the kernel's ``execution_ended`` hook, through which the approvals feature closes
the approvals the execution left open, whatever path ended it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.jobstatus import end_execution
from shared.queues import ENTITY_QUEUES
from workflow_service.kernel import hooks
from workflow_service.models import Execution, ExecutionStatus

log = logging.getLogger(__name__)

#: What the audit entry of an ended execution names besides its id and entity type.
_AUDITED = (Execution.tenant_id, Execution.entity_id, Execution.workflow)
#: Longest ``error`` an execution keeps.
ERROR_LIMIT = 4000


@dataclass(frozen=True)
class Ended:
    """An execution this process just ended, for :func:`report` after commit."""

    execution_id: str
    status: str
    reason: str
    #: The run job (id, queue) that last ran or parked it.
    job: tuple[str, str] | None


def stop(
    execution_id: str, status: str, reason: str, now: datetime, *, error: str | None = None
) -> Ended | None:
    """Move an unfinished execution to ``status`` (``cancelled`` or ``failed``).

    Conditional: one already final is left alone (None). ``error`` is kept on the
    execution when given. Call :func:`report` with the result after the surrounding
    transaction commits.
    """
    values: dict[Any, Any] = {
        Execution.status: status,
        Execution.finished_at: now,
        Execution.updated_at: now,
    }
    if error is not None:
        values[Execution.error] = error[:ERROR_LIMIT]
    changed = (
        Execution.update(values)
        .where((Execution.id == execution_id) & Execution.status.not_in(ExecutionStatus.FINAL))
        .execute()
    )
    if not changed:
        return None
    # Read after the UPDATE: the job that parked it, or the one a resume sent since.
    row = (
        Execution.select(Execution.job_id, Execution.entity_type, *_AUDITED)
        .where(Execution.id == execution_id)
        .tuples()
        .first()
    )
    if row is not None:
        audited = dict(zip(("tenant_id", "entity_id", "workflow"), row[2:], strict=True))
        ended = Execution(id=execution_id, entity_type=row[1], **audited)
        hooks.execution_recorded(ended, status, {"reason": reason[:500]})
    job = None
    if row is not None and row[0] and row[1] in ENTITY_QUEUES:
        job = (row[0], ENTITY_QUEUES[row[1]])
    return Ended(execution_id, status, reason, job)


def report(broker: Any, ended: Iterable[Ended | None]) -> None:
    """Tell the run jobs of ended executions how they ended, and fire the
    ``execution_ended`` hook for each (after commit: a feature closing what the
    execution left open, its approvals, races with no decision still in flight)."""
    for item in ended:
        if item is None:
            continue
        if item.job is not None:
            try:
                end_execution(broker, item.job[0], item.job[1], item.status, item.reason)
            except Exception as exc:  # noqa: BLE001 - the execution has ended regardless
                log.warning("job %s not told its execution ended: %s", item.job[0], exc)
        hooks.fire_after_commit(hooks.execution_ended, item.execution_id, item.status, item.reason)


def end(
    broker: Any,
    execution_id: str,
    status: str,
    reason: str,
    now: datetime,
    *,
    error: str | None = None,
) -> bool:
    """:func:`stop` and :func:`report`, for a caller outside a transaction."""
    ended = stop(execution_id, status, reason, now, error=error)
    report(broker, [ended])
    return ended is not None
