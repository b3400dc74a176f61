"""Migration 6: periodic reviews of policies (``policy_review``).

The table is described here as it is at version 6, frozen: a later change to
:class:`api_service.reviews.PolicyReview` comes with a migration of its own.
"""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

NAME = "policy reviews: outcome, reviewer, the version and review date each set"


def apply(db: peewee.Database, migrator: SchemaMigrator) -> None:
    class PolicyReview(peewee.Model):
        id = peewee.BigAutoField()
        tenant = peewee.CharField(max_length=64)
        policy = peewee.UUIDField()
        outcome = peewee.CharField(max_length=32)
        comment = peewee.TextField(null=True)
        reviewed_by = peewee.CharField(max_length=128)
        reviewed_at = peewee.DateTimeField()
        policy_version = peewee.IntegerField()
        next_review_date = peewee.DateField(null=True)

        class Meta:
            database = db
            table_name = "policy_review"
            # The list reads a policy's reviews newest first.
            indexes = ((("policy", "reviewed_at", "id"), False),)

    db.create_tables([PolicyReview])
