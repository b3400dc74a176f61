"""Migration 7: deadline notices of every entity type (``entity_deadline_notice``).

``deadline_notice`` (migration 2) was keyed on (policy, kind, deadline). Its rows move
to a table keyed on (entity_type, entity_id, kind, deadline) as policy notices, so a
policy's deadline events already written are not written again. A new table rather than
a changed key: neither SQLite nor a portable ALTER changes a composite primary key.
The table is described here as it is at version 7, frozen.
"""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

NAME = "deadline notices of every entity type (entity_deadline_notice; policy rows kept)"


def apply(db: peewee.Database, migrator: SchemaMigrator) -> None:
    class EntityDeadlineNotice(peewee.Model):
        entity_type = peewee.CharField(max_length=20)
        entity_id = peewee.UUIDField()
        kind = peewee.CharField(max_length=32)
        deadline = peewee.DateField()
        event_id = peewee.CharField(max_length=36)
        created_at = peewee.DateTimeField()

        class Meta:
            database = db
            table_name = "entity_deadline_notice"
            primary_key = peewee.CompositeKey("entity_type", "entity_id", "kind", "deadline")

    db.create_tables([EntityDeadlineNotice])
    db.execute_sql(
        "INSERT INTO entity_deadline_notice "
        "(entity_type, entity_id, kind, deadline, event_id, created_at) "
        "SELECT 'policy', policy, kind, deadline, event_id, created_at FROM deadline_notice"
    )
    db.execute_sql("DROP TABLE deadline_notice")
    # The scan looks assessments up by due date and accepted evidence by valid_until,
    # across tenants.
    db.execute_sql("CREATE INDEX IF NOT EXISTS assessment_due_date ON assessment (due_date)")
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS evidence_status_valid_until ON evidence (status, valid_until)"
    )
