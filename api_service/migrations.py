"""The api service's schema history, applied by ``python -m api_service migrate``."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from api_service import (
    migration_0001,
    migration_0005,
    migration_0006,
    migration_0007,
    migration_0008,
)
from shared.db import Migration


def _deadline_notices(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The table as it was at version 2, frozen (migration 7 replaces it).
    class DeadlineNotice(peewee.Model):
        policy = peewee.UUIDField()
        kind = peewee.CharField(max_length=32)
        deadline = peewee.DateField()
        event_id = peewee.CharField(max_length=36)
        created_at = peewee.DateTimeField()

        class Meta:
            database = db
            table_name = "deadline_notice"
            primary_key = peewee.CompositeKey("policy", "kind", "deadline")

    db.create_tables([DeadlineNotice])
    # The deadline scan looks policies up by review date.
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS policy_next_review_date ON policy (next_review_date)"
    )


def _separation_of_duties_tables(db: peewee.Database) -> list[type[peewee.Model]]:
    # The tables as they were at version 3, frozen.
    class TenantSettings(peewee.Model):
        tenant = peewee.CharField(max_length=64, primary_key=True)
        approval_requires_workflow = peewee.BooleanField(default=False)
        updated_by = peewee.CharField(max_length=128)
        updated_at = peewee.DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "tenant_settings"

    class PolicyRefusal(peewee.Model):
        id = peewee.BigAutoField()
        tenant = peewee.CharField(max_length=64)
        policy = peewee.UUIDField()
        from_status = peewee.CharField(max_length=20)
        to_status = peewee.CharField(max_length=20)
        refused_by = peewee.CharField(max_length=128)
        on_behalf_of = peewee.CharField(max_length=2000, null=True)
        reason = peewee.TextField()
        refused_at = peewee.DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "policy_refusal"
            indexes = ((("policy", "refused_at"), False),)

    return [TenantSettings, PolicyRefusal]


def _separation_of_duties(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # Each change is checked first: before migration 1 was frozen it created the
    # tables from the models of its day, so a database made then may have some of them.
    from playhouse.migrate import migrate

    operations = []
    if "submitted_by" not in {c.name for c in db.get_columns("policy")}:
        operations.append(
            migrator.add_column(
                "policy", "submitted_by", peewee.CharField(max_length=128, null=True)
            )
        )
    if "caller" not in {c.name for c in db.get_columns("idempotency_record")}:
        operations.append(
            migrator.add_column(
                "idempotency_record", "caller", peewee.CharField(max_length=128, default="")
            )
        )
    indexes = {i.name for i in db.get_indexes("idempotency_record")}
    if "idempotency_record_tenant_key" in indexes:
        operations.append(
            migrator.drop_index("idempotency_record", "idempotency_record_tenant_key")
        )
    if "idempotency_record_tenant_caller_key" not in indexes:
        operations.append(
            migrator.add_index("idempotency_record", ("tenant", "caller", "key"), unique=True)
        )
    if operations:
        migrate(*operations)
    db.create_tables(_separation_of_duties_tables(db))


def _version_via(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # Checked first: before migration 1 was frozen it created the tables from the
    # models of its day, so a database made then may have the column.
    from playhouse.migrate import migrate

    if "via" not in {c.name for c in db.get_columns("policy_version")}:
        migrate(
            migrator.add_column(
                "policy_version", "via", peewee.CharField(max_length=128, null=True)
            )
        )


MIGRATIONS: list[Migration] = [
    Migration(1, migration_0001.NAME, migration_0001.apply, service="api_service"),
    Migration(2, "deadline notices", _deadline_notices, service="api_service"),
    Migration(
        3,
        "separation of duties: who submitted a policy, tenant settings, refusals; "
        "idempotency keys per caller",
        _separation_of_duties,
        service="api_service",
    ),
    Migration(
        4,
        "policy versions: the service a change was made through (via)",
        _version_via,
        service="api_service",
    ),
    Migration(
        5,
        "assessments, evidence, their version snapshots and refused moves",
        migration_0005.apply,
        service="api_service",
    ),
    Migration(6, migration_0006.NAME, migration_0006.apply, service="api_service"),
    Migration(7, migration_0007.NAME, migration_0007.apply, service="api_service"),
    Migration(8, migration_0008.NAME, migration_0008.apply, service="api_service"),
]
