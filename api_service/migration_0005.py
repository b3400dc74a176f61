"""Migration 5: assessments, evidence, their version snapshots and refused moves.

The tables are described here as they are at version 5, frozen: a later change to
``api_service.models`` must come with a migration of its own and never changes what
this one creates.
"""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator


def _tables(db: peewee.Database) -> list[type[peewee.Model]]:
    class Frozen(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Assessment(Frozen):
        id = peewee.UUIDField(primary_key=True)
        tenant = peewee.CharField(max_length=64)
        title = peewee.CharField(max_length=200)
        scope = peewee.TextField(default="")
        policies = peewee.TextField()  # JSON list of policy ids
        assessor = peewee.CharField(max_length=128)
        due_date = peewee.DateField(null=True)
        findings = peewee.TextField(default="")
        result = peewee.CharField(max_length=32, null=True)
        status = peewee.CharField(max_length=20)
        version = peewee.IntegerField()
        created_by = peewee.CharField(max_length=128)
        created_at = peewee.DateTimeField()
        updated_by = peewee.CharField(max_length=128)
        updated_at = peewee.DateTimeField()
        deleted_at = peewee.DateTimeField(null=True)
        submitted_by = peewee.CharField(max_length=128, null=True)

        class Meta:
            table_name = "assessment"
            indexes = (
                (("tenant", "created_at", "id"), False),
                (("tenant", "status"), False),
                (("tenant", "assessor"), False),
                (("tenant", "due_date"), False),
            )

    class AssessmentVersion(Frozen):
        id = peewee.BigAutoField()
        assessment = peewee.ForeignKeyField(Assessment, on_delete="CASCADE")
        version = peewee.IntegerField()
        change = peewee.CharField(max_length=32)
        snapshot = peewee.TextField()
        changed_by = peewee.CharField(max_length=128)
        changed_at = peewee.DateTimeField()
        via = peewee.CharField(max_length=128, null=True)

        class Meta:
            table_name = "assessment_version"
            indexes = ((("assessment", "version"), True),)

    class Evidence(Frozen):
        id = peewee.UUIDField(primary_key=True)
        tenant = peewee.CharField(max_length=64)
        title = peewee.CharField(max_length=200)
        description = peewee.TextField(default="")
        kind = peewee.CharField(max_length=20)
        url = peewee.CharField(max_length=2000, null=True)
        policies = peewee.TextField()  # JSON list of policy ids
        assessments = peewee.TextField()  # JSON list of assessment ids
        collector = peewee.CharField(max_length=128)
        collected_at = peewee.DateTimeField(null=True)
        valid_until = peewee.DateField(null=True)
        status = peewee.CharField(max_length=20)
        version = peewee.IntegerField()
        file_name = peewee.CharField(max_length=255, null=True)
        content_type = peewee.CharField(max_length=100, null=True)
        size = peewee.BigIntegerField(null=True)
        sha256 = peewee.CharField(max_length=64, null=True)
        file_path = peewee.CharField(max_length=500, null=True)
        created_by = peewee.CharField(max_length=128)
        created_at = peewee.DateTimeField()
        updated_by = peewee.CharField(max_length=128)
        updated_at = peewee.DateTimeField()
        deleted_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "evidence"
            indexes = (
                (("tenant", "created_at", "id"), False),
                (("tenant", "status"), False),
                (("tenant", "collector"), False),
                (("tenant", "kind"), False),
                (("tenant", "valid_until"), False),
            )

    class EvidenceVersion(Frozen):
        id = peewee.BigAutoField()
        evidence = peewee.ForeignKeyField(Evidence, on_delete="CASCADE")
        version = peewee.IntegerField()
        change = peewee.CharField(max_length=32)
        snapshot = peewee.TextField()
        changed_by = peewee.CharField(max_length=128)
        changed_at = peewee.DateTimeField()
        via = peewee.CharField(max_length=128, null=True)

        class Meta:
            table_name = "evidence_version"
            indexes = ((("evidence", "version"), True),)

    class EntityRefusal(Frozen):
        id = peewee.BigAutoField()
        tenant = peewee.CharField(max_length=64)
        entity_type = peewee.CharField(max_length=20)
        entity_id = peewee.UUIDField()
        from_status = peewee.CharField(max_length=20)
        to_status = peewee.CharField(max_length=20)
        refused_by = peewee.CharField(max_length=128)
        on_behalf_of = peewee.CharField(max_length=2000, null=True)
        reason = peewee.TextField()
        refused_at = peewee.DateTimeField()

        class Meta:
            table_name = "entity_refusal"
            indexes = ((("entity_type", "entity_id", "refused_at"), False),)

    return [Assessment, AssessmentVersion, Evidence, EvidenceVersion, EntityRefusal]


def apply(db: peewee.Database, migrator: SchemaMigrator) -> None:
    db.create_tables(_tables(db), safe=True)
