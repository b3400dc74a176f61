"""Directory migrations (versions 100-129)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _directory_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The tables as they were at version 100, frozen.
    class User(peewee.Model):
        id = peewee.AutoField()
        tenant_id = peewee.CharField(max_length=64)
        user_id = peewee.CharField(max_length=128)
        name = peewee.CharField(max_length=200, default="")
        email = peewee.CharField(max_length=320, null=True)
        active = peewee.BooleanField(default=True)
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "directory_users"
            indexes = ((("tenant_id", "user_id"), True),)

    class UserRole(peewee.Model):
        id = peewee.AutoField()
        user = peewee.ForeignKeyField(User, on_delete="CASCADE")
        tenant_id = peewee.CharField(max_length=64)
        role = peewee.CharField(max_length=32)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "directory_user_roles"
            indexes = (
                (("user", "role"), True),
                (("tenant_id", "role"), False),
            )

    db.create_tables([User, UserRole])


MIGRATIONS: list[Migration] = [
    Migration(
        100, "user directory: users and their roles", _directory_tables, service="workflow_service"
    ),
]
