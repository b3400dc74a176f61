"""Approval migrations (versions 170-219)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _execution_table(db: peewee.Database) -> type[peewee.Model]:
    # The core's execution table (migration 1), only as the target of foreign keys.
    class Execution(peewee.Model):
        id = peewee.CharField(max_length=36, primary_key=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "execution"

    return Execution


def _approval_request_table(db: peewee.Database) -> type[peewee.Model]:
    # approval_request as it was at version 170 (the target of later foreign keys).
    class ApprovalRequest(peewee.Model):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        execution = peewee.ForeignKeyField(_execution_table(db), on_delete="CASCADE")
        step_key = peewee.CharField(max_length=64)
        title = peewee.CharField(max_length=300)
        entity_type = peewee.CharField(max_length=32)
        entity_id = peewee.CharField(max_length=64)
        entity_version = peewee.IntegerField(null=True)
        owner = peewee.CharField(max_length=128, null=True)
        initiator = peewee.CharField(max_length=128, null=True)
        stages = peewee.TextField()  # JSON
        allow_self_approval = peewee.BooleanField(default=False)
        due_in_s = peewee.IntegerField(null=True)
        escalate_to = peewee.TextField()  # JSON
        current_stage = peewee.IntegerField(default=0)
        status = peewee.CharField(max_length=16)
        due_at = peewee.DateTimeField(null=True)
        overdue_at = peewee.DateTimeField(null=True)
        decided_at = peewee.DateTimeField(null=True)
        decided_by = peewee.CharField(max_length=128, null=True)
        lock_version = peewee.IntegerField(default=0)
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "approval_request"
            indexes = (
                (("execution", "step_key"), True),
                (("tenant_id", "status", "created_at"), False),
                (("status", "due_at"), False),
            )

    return ApprovalRequest


def _approval_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The tables as they were at version 170, frozen (171, 172 and 174 add columns).
    ApprovalRequest = _approval_request_table(db)

    class ApprovalSlot(peewee.Model):
        id = peewee.AutoField()
        request = peewee.ForeignKeyField(ApprovalRequest, on_delete="CASCADE")
        tenant_id = peewee.CharField(max_length=64)
        stage = peewee.IntegerField()
        approver = peewee.CharField(max_length=128)
        status = peewee.CharField(max_length=16)
        comment = peewee.TextField(null=True)
        decided_at = peewee.DateTimeField(null=True)
        entity_version = peewee.IntegerField(null=True)
        created_at = peewee.DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "approval_slot"
            indexes = (
                (("request", "stage", "approver"), True),
                (("tenant_id", "approver", "status"), False),
            )

    db.create_tables([ApprovalRequest, ApprovalSlot])


def _notify_channels(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # Checked first: before migration 170 was frozen it created the tables from the
    # models of its day, so a database made then may have some of this.
    if "notify_channels" in {c.name for c in db.get_columns("approval_request")}:
        return
    from playhouse.migrate import migrate

    from workflow_service.db import JSONField

    migrate(migrator.add_column("approval_request", "notify_channels", JSONField(null=True)))


def _separation_of_duties(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # Checked first: before migration 170 was frozen it created the tables from the
    # models of its day, so a database made then may have some of this.
    from playhouse.migrate import migrate

    columns = {c.name for c in db.get_columns("approval_request")}
    operations = []
    if "creator" not in columns:
        operations.append(
            migrator.add_column(
                "approval_request", "creator", peewee.CharField(max_length=128, null=True)
            )
        )
    if "approves_entity" not in columns:
        operations.append(
            migrator.add_column(
                "approval_request", "approves_entity", peewee.BooleanField(default=False)
            )
        )
    if operations:
        migrate(*operations)


def _refusals(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The table as it was at version 173, frozen.
    class ApprovalRefusal(peewee.Model):
        id = peewee.AutoField()
        request = peewee.ForeignKeyField(_approval_request_table(db), on_delete="CASCADE")
        tenant_id = peewee.CharField(max_length=64)
        user_id = peewee.CharField(max_length=128)
        decision = peewee.CharField(max_length=16)
        reason = peewee.CharField(max_length=32)
        description = peewee.TextField()
        created_at = peewee.DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "approval_refusal"
            indexes = ((("request", "created_at"), False),)

    db.create_tables([ApprovalRefusal])


def _bound_to_version(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # Checked first: before migration 170 was frozen it created the tables from the
    # models of its day, so a database made then may have some of this.
    from playhouse.migrate import migrate

    requests = {c.name for c in db.get_columns("approval_request")}
    slots = {c.name for c in db.get_columns("approval_slot")}
    operations = []
    if "entity_status" not in requests:
        operations.append(
            migrator.add_column(
                "approval_request", "entity_status", peewee.CharField(max_length=32, null=True)
            )
        )
    if "closed_reason" not in requests:
        operations.append(
            migrator.add_column("approval_request", "closed_reason", peewee.TextField(null=True))
        )
    if "known" not in slots:
        operations.append(
            migrator.add_column("approval_slot", "known", peewee.BooleanField(default=False))
        )
    columns = ("tenant_id", "entity_type", "entity_id", "status")
    if "approval_request_" + "_".join(columns) not in {
        i.name for i in db.get_indexes("approval_request")
    }:
        operations.append(migrator.add_index("approval_request", columns))
    if operations:
        migrate(*operations)


def _template_workflows(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The table as it was at version 175, frozen.
    class TemplateWorkflow(peewee.Model):
        id = peewee.AutoField()
        tenant_id = peewee.CharField(max_length=64)
        template = peewee.CharField(max_length=64)
        workflow_id = peewee.CharField(max_length=36)
        created_at = peewee.DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "template_workflow"
            indexes = ((("tenant_id", "template"), True),)

    db.create_tables([TemplateWorkflow])


MIGRATIONS: list[Migration] = [
    Migration(
        170,
        "approval requests and per-approver slots",
        _approval_tables,
        service="workflow_service",
    ),
    Migration(
        171,
        "approval requests: channels approvers are told on",
        _notify_channels,
        service="workflow_service",
    ),
    Migration(
        172,
        "approval requests: the entity's creator, and whether approving approves it",
        _separation_of_duties,
        service="workflow_service",
    ),
    Migration(
        173,
        "refused approval decisions (who, when, why)",
        _refusals,
        service="workflow_service",
    ),
    Migration(
        174,
        "approvals bound to the entity's version and status; why one closed; slots of "
        "directory users",
        _bound_to_version,
        service="workflow_service",
    ),
    Migration(
        175,
        "the workflow made from each template, one per tenant",
        _template_workflows,
        service="workflow_service",
    ),
]
