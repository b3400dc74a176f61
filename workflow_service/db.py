"""The workflow database: one DatabaseProxy every model binds to.

Processes call :func:`init_database` once with the settings' URL; tests point it at
their own SQLite file or PostgreSQL database the same way.
"""

from __future__ import annotations

import json
from typing import Any

import peewee

from shared.db import open_database

database = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class JSONField(peewee.TextField):
    """JSON stored as text, so SQLite and PostgreSQL behave the same."""

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), default=str)

    def python_value(self, value: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        return json.loads(value)


def init_database(url: str) -> peewee.Database:
    """Open ``url`` and bind every model to it."""
    db = open_database(url)
    database.initialize(db)
    return db
