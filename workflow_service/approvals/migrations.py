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
]
