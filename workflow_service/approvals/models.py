"""Approval tables.

An :class:`ApprovalRequest` is one ``require_approval`` step of one execution (unique
on both). It holds the stage plan and the outcome. Each approver of the current stage
gets an :class:`ApprovalSlot`; the slot is where the decision is recorded for audit
(who, when, comment, the entity's version at that moment) and what "mine" lists.
An :class:`ApprovalRefusal` records a decision that was refused (who, when, why).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import peewee

from shared.db import utcnow
from workflow_service.db import BaseModel, JSONField
from workflow_service.models import Execution


class ApprovalStatus:
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    ALL = (PENDING, APPROVED, REJECTED, CANCELLED)


class ApprovalRequest(BaseModel):
    id = peewee.CharField(max_length=36, primary_key=True, default=lambda: str(uuid.uuid4()))
    tenant_id = peewee.CharField(max_length=64)
    execution = peewee.ForeignKeyField(Execution, backref="approval_requests", on_delete="CASCADE")
    if TYPE_CHECKING:
        execution_id: str  # peewee's accessor for the foreign key's raw value
    step_key = peewee.CharField(max_length=64)
    title = peewee.CharField(max_length=300)
    entity_type = peewee.CharField(max_length=32)
    entity_id = peewee.CharField(max_length=64)
    #: The entity's version the approval was asked for: the trigger event's, or the
    #: one an earlier ``change_status`` of the execution moved it to. A decision on
    #: any other version is refused and closes the approval as stale.
    entity_version = peewee.IntegerField(null=True)
    #: The entity's status the approval was asked for (same source); None: any.
    entity_status = peewee.CharField(max_length=32, null=True)
    owner = peewee.CharField(max_length=128, null=True)
    initiator = peewee.CharField(max_length=128, null=True)
    #: Who created the entity (the event snapshot's ``created_by``; None in older events).
    creator = peewee.CharField(max_length=128, null=True)
    #: True when approving moves the entity to ``approved`` (its on_approve has a
    #: ``change_status`` to approved): its creator, owner and initiator never decide it.
    approves_entity = peewee.BooleanField(default=False)
    #: [{"approvers": [...], "mode": "all"|"any"|"quorum", "quorum": n}, ...] in order.
    stages = JSONField()
    allow_self_approval = peewee.BooleanField(default=False)
    #: Seconds each stage has before it is overdue (None: no due time).
    due_in_s = peewee.IntegerField(null=True)
    escalate_to = JSONField(default=list)
    #: How approvers are told a stage awaits them ("in_app", "email"); None: in-app only.
    notify_channels = JSONField(null=True)
    current_stage = peewee.IntegerField(default=0)
    status = peewee.CharField(max_length=16, default=ApprovalStatus.PENDING)
    due_at = peewee.DateTimeField(null=True)
    overdue_at = peewee.DateTimeField(null=True)
    decided_at = peewee.DateTimeField(null=True)
    decided_by = peewee.CharField(max_length=128, null=True)
    #: Why a cancelled approval was closed without a decision (entity deleted, archived
    #: or moved on; execution cancelled).
    closed_reason = peewee.TextField(null=True)
    #: Bumped by every decision: the UPDATE that bumps it serializes concurrent deciders.
    lock_version = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("execution", "step_key"), True),
            (("tenant_id", "status", "created_at"), False),
            (("status", "due_at"), False),
            (("tenant_id", "entity_type", "entity_id", "status"), False),
        )


class ApprovalSlot(BaseModel):
    id = peewee.AutoField()
    request = peewee.ForeignKeyField(ApprovalRequest, backref="slots", on_delete="CASCADE")
    if TYPE_CHECKING:
        request_id: str  # peewee's accessor for the foreign key's raw value
    tenant_id = peewee.CharField(max_length=64)
    stage = peewee.IntegerField()
    approver = peewee.CharField(max_length=128)
    status = peewee.CharField(max_length=16, default=ApprovalStatus.PENDING)
    comment = peewee.TextField(null=True)
    decided_at = peewee.DateTimeField(null=True)
    #: The entity's version when this approver decided (what they actually saw).
    entity_version = peewee.IntegerField(null=True)
    #: The approver was a directory user when the slot was made: once they are removed
    #: from the directory (or deactivated) they no longer decide.
    known = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("request", "stage", "approver"), True),
            (("tenant_id", "approver", "status"), False),
        )


class ApprovalRefusal(BaseModel):
    """A refused decision: who tried, when, and why (``reason`` is a short code)."""

    id = peewee.AutoField()
    request = peewee.ForeignKeyField(ApprovalRequest, backref="refusals", on_delete="CASCADE")
    tenant_id = peewee.CharField(max_length=64)
    user_id = peewee.CharField(max_length=128)
    decision = peewee.CharField(max_length=16)
    reason = peewee.CharField(max_length=32)
    description = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("request", "created_at"), False),)


class TemplateWorkflow(BaseModel):
    """The workflow a tenant made from a template: one per (tenant, template), so
    creating it again finds the first one, however many requests race."""

    id = peewee.AutoField()
    tenant_id = peewee.CharField(max_length=64)
    template = peewee.CharField(max_length=64)
    workflow_id = peewee.CharField(max_length=36)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tenant_id", "template"), True),)


#: The tables of migration 170 (later tables come with the migration that adds them).
APPROVAL_MODELS: tuple[type[BaseModel], ...] = (ApprovalRequest, ApprovalSlot)
