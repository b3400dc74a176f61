"""The audit trail's declaration: it hears of every audited change through hooks."""

from workflow_service.audit import record, resources
from workflow_service.audit.jobs import audit_sweep
from workflow_service.audit.migrations import MIGRATIONS
from workflow_service.kernel.feature import Feature

FEATURE = Feature(
    name="audit",
    actor_modules=("workflow_service.audit.actors",),
    routes=(resources.register,),
    jobs=(audit_sweep,),
    hooks={
        "event_received": record.record_event,
        "execution_recorded": record.record_execution,
        "step_recorded": record.record_step,
        "workflow_changed": record.record_workflow,
        "task_recorded": record.record_task,
        "user_recorded": record.record_user,
        "approval_recorded": record.record_approval,
        "delivery_recorded": record.record_delivery,
        "action_recorded": record.record,
        "acting_as": record.act_as,
    },
    migrations=tuple(MIGRATIONS),
)
