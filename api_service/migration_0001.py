"""Migration 1: policies, their versions, the outbox and idempotency records.

The tables are described here as they were at version 1, frozen: a later change to
``api_service.models`` comes with a migration of its own and never changes what this
one creates (``policy.submitted_by``, ``idempotency_record.caller`` and its key per
caller came with migration 3, ``policy_version.via`` with migration 4).
"""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

NAME = "policies, versions, outbox, idempotency records"


def _tables(db: peewee.Database) -> list[type[peewee.Model]]:
    class Frozen(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Policy(Frozen):
        id = peewee.UUIDField(primary_key=True)
        tenant = peewee.CharField(max_length=64)
        title = peewee.CharField(max_length=200)
        policy_type = peewee.CharField(max_length=64)
        content = peewee.TextField(default="")
        owner = peewee.CharField(max_length=128)
        status = peewee.CharField(max_length=20, default="draft")
        version = peewee.IntegerField(default=1)
        review_frequency = peewee.CharField(max_length=20, null=True)
        next_review_date = peewee.DateField(null=True)
        effective_date = peewee.DateField(null=True)
        tags = peewee.TextField()  # JSON list
        created_by = peewee.CharField(max_length=128)
        created_at = peewee.DateTimeField()
        updated_by = peewee.CharField(max_length=128)
        updated_at = peewee.DateTimeField()
        deleted_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "policy"
            indexes = (
                (("tenant", "created_at", "id"), False),
                (("tenant", "status"), False),
                (("tenant", "policy_type"), False),
                (("tenant", "owner"), False),
            )

    class PolicyVersion(Frozen):
        id = peewee.BigAutoField()
        policy = peewee.ForeignKeyField(Policy, on_delete="CASCADE")
        version = peewee.IntegerField()
        change = peewee.CharField(max_length=32)
        snapshot = peewee.TextField()  # JSON
        changed_by = peewee.CharField(max_length=128)
        changed_at = peewee.DateTimeField()

        class Meta:
            table_name = "policy_version"
            indexes = ((("policy", "version"), True),)

    class Outbox(Frozen):
        id = peewee.BigAutoField()
        event_id = peewee.CharField(max_length=36, unique=True)
        tenant = peewee.CharField(max_length=64)
        queue_name = peewee.CharField(max_length=64)
        payload = peewee.TextField()  # JSON
        created_at = peewee.DateTimeField()
        claimed_until = peewee.DateTimeField(null=True)
        claimed_by = peewee.CharField(max_length=36, null=True)
        attempts = peewee.IntegerField(default=0)
        last_error = peewee.TextField(null=True)
        sent_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "outbox"
            indexes = ((("sent_at", "id"), False),)

    class IdempotencyRecord(Frozen):
        id = peewee.BigAutoField()
        tenant = peewee.CharField(max_length=64)
        key = peewee.CharField(max_length=200)
        request_hash = peewee.CharField(max_length=64)
        status = peewee.IntegerField()
        body = peewee.TextField()  # JSON
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "idempotency_record"
            indexes = ((("tenant", "key"), True),)

    return [Policy, PolicyVersion, Outbox, IdempotencyRecord]


def apply(db: peewee.Database, migrator: SchemaMigrator) -> None:
    db.create_tables(_tables(db))
