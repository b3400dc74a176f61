"""The approvals feature's declaration."""

from workflow_service.approvals import entity_events, jobs, reassign, resources, service
from workflow_service.approvals.migrations import MIGRATIONS
from workflow_service.approvals.steps import ApprovalChangeStatus, ApprovalNotify, RequireApproval
from workflow_service.kernel.feature import Feature


def close_approvals(execution_id: str, status: str, reason: str) -> None:
    """An execution ended from outside its run (a cancel by any path, a failure): its
    approvals still open can no longer be decided, so they close."""
    service.cancel_for_execution(execution_id)


FEATURE = Feature(
    name="approvals",
    steps=(RequireApproval, ApprovalChangeStatus, ApprovalNotify),
    routes=(resources.register,),
    jobs=(jobs.register_jobs, reassign.register_jobs),
    hooks={"execution_ended": close_approvals, "entity_event": entity_events.on_event},
    migrations=tuple(MIGRATIONS),
)
