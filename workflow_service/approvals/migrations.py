"""Approval migrations (versions 170-219)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _approval_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from workflow_service.approvals.models import APPROVAL_MODELS

    with db.bind_ctx(APPROVAL_MODELS):  # the database given, whatever the models are bound to
        db.create_tables(APPROVAL_MODELS)


def _notify_channels(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # 170 creates tables from the current models, so a fresh database has it already.
    if "notify_channels" in {c.name for c in db.get_columns("approval_request")}:
        return
    from playhouse.migrate import migrate

    from workflow_service.db import JSONField

    migrate(migrator.add_column("approval_request", "notify_channels", JSONField(null=True)))


def _separation_of_duties(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # 170 creates tables from the current models, so a fresh database has the columns.
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
    from workflow_service.approvals.models import ApprovalRefusal

    with db.bind_ctx([ApprovalRefusal]):
        db.create_tables([ApprovalRefusal])


def _bound_to_version(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # 170 creates tables from the current models, so a fresh database has them.
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
    from workflow_service.approvals.models import TemplateWorkflow

    with db.bind_ctx([TemplateWorkflow]):
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
