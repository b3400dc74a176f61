"""Tables of the audit trail: pending rows (the outbox), the chain, and each tenant's
head (its last sequence number and hash, and the row a chain builder locks)."""

from __future__ import annotations

import peewee

from shared.db import utcnow
from workflow_service.db import BaseModel, JSONField


class AuditPending(BaseModel):
    """A source event not yet in the chain; written in the source's own transaction."""

    id = peewee.AutoField()
    tenant_id = peewee.CharField(max_length=64)
    #: The api event id, or the id of the action (``workflow:<id>:v3``): unique per
    #: tenant, so a redelivered source records nothing new.
    source_id = peewee.CharField(max_length=200)
    occurred_at = peewee.DateTimeField(default=utcnow)
    actor = peewee.CharField(max_length=128)
    action = peewee.CharField(max_length=64)
    entity_type = peewee.CharField(max_length=32)
    entity_id = peewee.CharField(max_length=64)
    digest = JSONField(default=dict)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "audit_pending"
        indexes = (
            (("tenant_id", "source_id"), True),
            (("created_at",), False),
        )


class AuditEntry(BaseModel):
    """One link of a tenant's chain. Never updated or deleted by the service."""

    id = peewee.AutoField()
    tenant_id = peewee.CharField(max_length=64)
    seq = peewee.BigIntegerField()
    source_id = peewee.CharField(max_length=200)
    occurred_at = peewee.DateTimeField()
    actor = peewee.CharField(max_length=128)
    action = peewee.CharField(max_length=64)
    entity_type = peewee.CharField(max_length=32)
    entity_id = peewee.CharField(max_length=64)
    digest = JSONField(default=dict)
    prev_hash = peewee.CharField(max_length=64)
    hash = peewee.CharField(max_length=64)
    recorded_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "audit_entry"
        indexes = (
            (("tenant_id", "seq"), True),
            (("tenant_id", "source_id"), True),
            (("tenant_id", "entity_type", "entity_id", "seq"), False),
            (("tenant_id", "actor", "seq"), False),
            (("tenant_id", "occurred_at"), False),
        )


class AuditHead(BaseModel):
    """A tenant's chain head: what the next entry links to. Chain builders lock it."""

    tenant_id = peewee.CharField(max_length=64, primary_key=True)
    seq = peewee.BigIntegerField(default=0)
    hash = peewee.CharField(max_length=64)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "audit_head"


AUDIT_MODELS = [AuditPending, AuditEntry, AuditHead]
