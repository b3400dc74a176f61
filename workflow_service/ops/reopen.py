"""Before an operator's retry of a dead ``run_execution`` job: reopen its execution
(and of a dead delivery job: reopen its delivery, see
:func:`~workflow_service.notifications.delivery.reopen_failed_delivery`).

When a run message is dead-lettered the execution is already marked failed (the run
actor's ``on_retry_exhausted`` handler does that), and a failed execution is final: a
run message would find nothing to claim and "succeed" without doing anything. An
operator who retries the job means "run this execution again", so the execution goes
back to pending - one conditional UPDATE, only from failed - and then resumes at its
first unfinished step like any retry; finished steps are not repeated.

The reopen happens before the new message is sent (a worker must find the execution
pending), so it comes with its undo for when sending fails: the execution is then
failed again, exactly as it was, and the operator can retry it later.
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from shared.db import utcnow
from shared.queues import ENTITY_QUEUES
from workflow_service.engine import run_actor_name
from workflow_service.models import Execution, ExecutionStatus
from workflow_service.notifications.delivery import reopen_failed_delivery

RUN_ACTORS = frozenset(run_actor_name(entity) for entity in ENTITY_QUEUES)


def reopen_for_retry(message: dramatiq.Message, new_job_id: str) -> Callable[[], None] | None:
    """The ops retry's ``before_retry``: reopen a failed execution (a run job) or a
    failed delivery (a ``deliver_notification`` job), whichever the message is about."""
    return reopen_failed_delivery(message, new_job_id) or reopen_failed_execution(
        message, new_job_id
    )


def reopen_failed_execution(
    message: dramatiq.Message, new_job_id: str
) -> Callable[[], None] | None:
    """Move the message's execution from failed to pending, owned by ``new_job_id``.

    Returns a function that puts the execution back as it was (None when nothing was
    reopened).
    """
    if message.actor_name not in RUN_ACTORS or len(message.args) != 1:
        return None
    execution_id = str(message.args[0])
    failed = (Execution.id == execution_id) & (Execution.status == ExecutionStatus.FAILED)
    # Read before the UPDATE without a lock: a failed execution is final but for this
    # reopen, and the dead letter this retry claimed atomically makes it the only one.
    before = (
        Execution.select(
            Execution.job_id, Execution.finished_at, Execution.claimed_at, Execution.updated_at
        )
        .where(failed)
        .first()
    )
    if before is None:
        return None
    reopened = (
        Execution.update(
            status=ExecutionStatus.PENDING,
            job_id=new_job_id,
            finished_at=None,
            claimed_at=None,
            updated_at=utcnow(),
        )
        .where(failed)
        .execute()
    )
    if not reopened:
        return None

    def undo() -> None:
        # Only while no worker has claimed it: the new job id names this reopen.
        (
            Execution.update(
                status=ExecutionStatus.FAILED,
                job_id=before.job_id,
                finished_at=before.finished_at,
                claimed_at=before.claimed_at,
                updated_at=before.updated_at,
            )
            .where(
                (Execution.id == execution_id)
                & (Execution.status == ExecutionStatus.PENDING)
                & (Execution.job_id == new_job_id)
            )
            .execute()
        )

    return undo
