"""Directory tables. Roles live in their own table so "everyone with role X in tenant T"
is an index lookup, not a scan of JSON columns."""

from __future__ import annotations

import peewee

from shared.db import utcnow
from workflow_service.db import BaseModel


class User(BaseModel):
    id = peewee.AutoField()
    tenant_id = peewee.CharField(max_length=64)
    #: The JWT ``sub`` this person signs in with.
    user_id = peewee.CharField(max_length=128)
    name = peewee.CharField(max_length=200, default="")
    email = peewee.CharField(max_length=320, null=True)
    active = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "directory_users"
        indexes = ((("tenant_id", "user_id"), True),)


class UserRole(BaseModel):
    user = peewee.ForeignKeyField(User, backref="role_rows", on_delete="CASCADE")
    tenant_id = peewee.CharField(max_length=64)
    role = peewee.CharField(max_length=32)

    class Meta:
        table_name = "directory_user_roles"
        indexes = (
            (("user", "role"), True),
            (("tenant_id", "role"), False),
        )


DIRECTORY_MODELS: tuple[type[BaseModel], ...] = (User, UserRole)
