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
]
