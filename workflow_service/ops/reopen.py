"""Before an operator's retry of a dead ``run_execution`` job: reopen its execution.

When a run message is dead-lettered the execution is already marked failed (the run
actor's ``on_retry_exhausted`` handler does that), and a failed execution is final: a
run message would find nothing to claim and "succeed" without doing anything. An
operator who retries the job means "run this execution again", so the execution goes
back to pending - one conditional UPDATE, only from failed - and then resumes at its
first unfinished step like any retry; finished steps are not repeated.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from shared.db import utcnow
from shared.queues import ENTITY_QUEUES
from workflow_service.engine import run_actor_name
from workflow_service.models import Execution, ExecutionStatus

RUN_ACTORS = frozenset(run_actor_name(entity) for entity in ENTITY_QUEUES)


def reopen_failed_execution(message: dramatiq.Message, new_job_id: str) -> Any:
    """Move the message's execution from failed to pending, owned by ``new_job_id``."""
    if message.actor_name not in RUN_ACTORS or len(message.args) != 1:
        return None
    now = utcnow()
    return (
        Execution.update(
            status=ExecutionStatus.PENDING,
            job_id=new_job_id,
            finished_at=None,
            claimed_at=None,
            updated_at=now,
        )
        .where(
            (Execution.id == str(message.args[0])) & (Execution.status == ExecutionStatus.FAILED)
        )
        .execute()
    )
