"""Approval migrations (versions 170-219)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _approval_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    from workflow_service.approvals.models import APPROVAL_MODELS

    db.create_tables(APPROVAL_MODELS)


MIGRATIONS: list[Migration] = [
    Migration(170, "approval requests and per-approver slots", _approval_tables),
]
