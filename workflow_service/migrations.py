"""Schema migrations of the workflow service (``python -m workflow_service migrate``).

Versions 1-99 are the core's. Feature packages keep their own lists (versions 100-299)
in a ``migrations`` module exposing ``MIGRATIONS`` and add one line to
:data:`EXTENSION_MODULES`; :func:`all_migrations` collects them and refuses overlaps.
"""

from __future__ import annotations

import importlib

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration

#: Modules that hold further migration lists (each exposes ``MIGRATIONS``).
EXTENSION_MODULES: list[str] = [
    "workflow_service.users.migrations",
    "workflow_service.notifications.migrations",
    "workflow_service.approvals.migrations",
    "workflow_service.audit.migrations",
    "workflow_service.files.migrations",
    "workflow_service.exports.migrations",
    "workflow_service.imports.migrations",
]


def _core_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The table set as of version 1. Later changes to these tables get their own
    # migration here (migrator.add_column, ...), never an edit of this one.
    from workflow_service.models import CORE_MODELS

    with db.bind_ctx(CORE_MODELS):  # the database given, whatever the models are bound to
        db.create_tables(CORE_MODELS)


def _allow_unknown_users(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # 1 creates the tables from the current models, so a fresh database has it already.
    from playhouse.migrate import migrate

    if "allow_unknown_users" not in {c.name for c in db.get_columns("workflow")}:
        field = peewee.BooleanField(default=False)
        migrate(migrator.add_column("workflow", "allow_unknown_users", field))


CORE_MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "core tables: workflows, executions, step log, tasks, inbox",
        _core_tables,
        service="workflow_service",
    ),
    Migration(
        2,
        "workflows: allow_unknown_users",
        _allow_unknown_users,
        service="workflow_service",
    ),
]


def all_migrations() -> list[Migration]:
    migrations = list(CORE_MIGRATIONS)
    for module_name in EXTENSION_MODULES:
        migrations.extend(importlib.import_module(module_name).MIGRATIONS)
    versions = [m.version for m in migrations]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise RuntimeError(f"migration versions used twice: {duplicates}")
    return migrations
