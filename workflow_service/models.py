"""Tables of the workflow service.

A :class:`Workflow` row holds the current definition; every edit also writes a
:class:`WorkflowVersion` snapshot, and an :class:`Execution` runs the snapshot of the
version it was created with. :class:`StepRun` is the step log: one row per attempt of
each step, so a retry can resume at the first step without a ``completed`` row.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import peewee

from shared.db import utcnow
from workflow_service.db import BaseModel, JSONField


def new_id() -> str:
    return str(uuid.uuid4())


def is_id(value: object) -> bool:
    """``value`` is an id as :func:`new_id` makes them (a UUID string)."""
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class WorkflowStatus:
    ACTIVE = "active"
    INACTIVE = "inactive"
    ARCHIVED = "archived"
    ALL = (ACTIVE, INACTIVE, ARCHIVED)


class ExecutionStatus:
    PENDING = "pending"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ALL = (PENDING, RUNNING, WAITING_APPROVAL, COMPLETED, FAILED, CANCELLED)
    FINAL = (COMPLETED, FAILED, CANCELLED)


class StepStatus:
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    WAITING = "waiting"
    CANCELLED = "cancelled"


class Workflow(BaseModel):
    id = peewee.CharField(max_length=36, primary_key=True, default=new_id)
    tenant_id = peewee.CharField(max_length=64)
    name = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    entity_type = peewee.CharField(max_length=32)
    trigger = peewee.CharField(max_length=40)
    trigger_config = JSONField(default=dict)
    conditions = JSONField(default=list)
    steps = JSONField(default=list)
    #: Steps may name user ids the directory does not have (yet).
    allow_unknown_users = peewee.BooleanField(default=False)
    status = peewee.CharField(max_length=16, default=WorkflowStatus.INACTIVE)
    version = peewee.IntegerField(default=1)
    created_by = peewee.CharField(max_length=128)
    updated_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        # Dispatch looks workflows up by exactly these columns; never a scan.
        indexes = ((("tenant_id", "entity_type", "trigger", "status"), False),)

    def definition(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "entity_type": self.entity_type,
            "trigger": self.trigger,
            "trigger_config": self.trigger_config,
            "conditions": self.conditions,
            "steps": self.steps,
            "allow_unknown_users": bool(self.allow_unknown_users),
        }


class WorkflowVersion(BaseModel):
    workflow = peewee.ForeignKeyField(Workflow, backref="versions", on_delete="CASCADE")
    version = peewee.IntegerField()
    definition = JSONField()
    status = peewee.CharField(max_length=16)
    created_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("workflow", "version"), True),)


class Execution(BaseModel):
    id = peewee.CharField(max_length=36, primary_key=True, default=new_id)
    tenant_id = peewee.CharField(max_length=64)
    workflow = peewee.ForeignKeyField(Workflow, backref="executions", on_delete="CASCADE")
    if TYPE_CHECKING:
        workflow_id: str  # peewee's accessor for the foreign key's raw value
    workflow_version = peewee.IntegerField()
    #: The trigger event (or the manual run request); unique with the workflow, so a
    #: redelivered or republished event creates nothing new.
    event_id = peewee.CharField(max_length=64)
    event = JSONField()
    entity_type = peewee.CharField(max_length=32)
    entity_id = peewee.CharField(max_length=64)
    status = peewee.CharField(max_length=20, default=ExecutionStatus.PENDING)
    #: How many times a worker claimed it (first run, retries, redeliveries).
    attempts = peewee.IntegerField(default=0)
    error = peewee.TextField(null=True)
    #: Id of the run message; deterministic, so a re-send is recognisably the same job.
    job_id = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    claimed_at = peewee.DateTimeField(null=True)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("workflow", "event_id"), True),
            (("tenant_id", "status", "created_at"), False),
            (("tenant_id", "entity_type", "entity_id"), False),
            (("status", "updated_at"), False),
        )


class StepRun(BaseModel):
    """One attempt of one step. ``key`` is the step's place: "0", "1", or "1.0" for the
    first step of a branch that step 1 returned."""

    id = peewee.AutoField()
    execution = peewee.ForeignKeyField(Execution, backref="step_runs", on_delete="CASCADE")
    key = peewee.CharField(max_length=64)
    position = peewee.IntegerField()
    kind = peewee.CharField(max_length=40)
    attempt = peewee.IntegerField()
    status = peewee.CharField(max_length=16, default=StepStatus.RUNNING)
    output = JSONField(null=True)
    #: Step definitions a completed step asked to run next (see StepOutcome.branch).
    branch = JSONField(null=True)
    error = peewee.TextField(null=True)
    started_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("execution", "key", "attempt"), True),)


class Task(BaseModel):
    id = peewee.CharField(max_length=36, primary_key=True, default=new_id)
    tenant_id = peewee.CharField(max_length=64)
    execution = peewee.ForeignKeyField(Execution, null=True, on_delete="SET NULL")
    if TYPE_CHECKING:
        execution_id: str | None  # peewee's accessor for the foreign key's raw value
    step_key = peewee.CharField(max_length=64, null=True)
    title = peewee.CharField(max_length=300)
    description = peewee.TextField(default="")
    assignee = peewee.CharField(max_length=128, null=True)
    assignee_role = peewee.CharField(max_length=32, null=True)
    entity_type = peewee.CharField(max_length=32)
    entity_id = peewee.CharField(max_length=64)
    status = peewee.CharField(max_length=16, default="open")
    due_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    completed_at = peewee.DateTimeField(null=True)
    completed_by = peewee.CharField(max_length=128, null=True)

    class Meta:
        indexes = (
            (("execution", "step_key"), True),
            (("tenant_id", "assignee", "status"), False),
            (("tenant_id", "assignee_role", "status"), False),
        )


class Assignment(BaseModel):
    """Who an entity was assigned to, and why: written by ``assign`` steps before they
    assigned through the api, which now keeps assignments (the entity and its
    versions). No longer written; the table stays so no migration has to drop it."""

    id = peewee.CharField(max_length=36, primary_key=True, default=new_id)
    tenant_id = peewee.CharField(max_length=64)
    execution = peewee.ForeignKeyField(Execution, null=True, on_delete="SET NULL")
    if TYPE_CHECKING:
        execution_id: str | None  # peewee's accessor for the foreign key's raw value
    step_key = peewee.CharField(max_length=64, null=True)
    entity_type = peewee.CharField(max_length=32)
    entity_id = peewee.CharField(max_length=64)
    assignee = peewee.CharField(max_length=128)
    purpose = peewee.CharField(max_length=64, default="owner")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("execution", "step_key", "assignee"), True),
            (("tenant_id", "entity_type", "entity_id"), False),
        )


class Notification(BaseModel):
    """The in-app inbox: one row per recipient user (or per role when no directory
    can expand the role into users)."""

    id = peewee.CharField(max_length=36, primary_key=True, default=new_id)
    tenant_id = peewee.CharField(max_length=64)
    recipient = peewee.CharField(max_length=128, null=True)
    recipient_role = peewee.CharField(max_length=32, null=True)
    #: ``user:<id>`` or ``role:<name>``: one inbox row per address and step (unique).
    address = peewee.CharField(max_length=170)
    channel = peewee.CharField(max_length=16, default="in_app")
    execution = peewee.ForeignKeyField(Execution, null=True, on_delete="SET NULL")
    if TYPE_CHECKING:
        execution_id: str | None  # peewee's accessor for the foreign key's raw value
    step_key = peewee.CharField(max_length=64, null=True)
    subject = peewee.CharField(max_length=300)
    body = peewee.TextField(default="")
    entity_type = peewee.CharField(max_length=32, null=True)
    entity_id = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    read_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("execution", "step_key", "address"), True),
            (("tenant_id", "recipient", "created_at"), False),
            (("tenant_id", "recipient_role", "created_at"), False),
        )


class RejectedMessage(BaseModel):
    """A message that could never be processed (invalid event, unknown execution):
    kept for operators, since Dramatiq only keeps the dead-lettered copy for a while."""

    id = peewee.AutoField()
    message_id = peewee.CharField(max_length=64)
    queue_name = peewee.CharField(max_length=64)
    actor_name = peewee.CharField(max_length=64)
    reason = peewee.TextField()
    payload = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)


CORE_MODELS: tuple[type[BaseModel], ...] = (
    Workflow,
    WorkflowVersion,
    Execution,
    StepRun,
    Task,
    Assignment,
    Notification,
    RejectedMessage,
)
