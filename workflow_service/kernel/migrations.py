"""The core's schema migrations (versions 1-99): the kernel's tables.

Each feature keeps its own list (versions 100-299) in its package's ``migrations``
module and declares it in its ``FEATURE``; ``workflow_service.migrations.all_migrations``
collects the core's and the features'.
"""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator

from shared.db import Migration


def _core_tables(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # The table set as of version 1, frozen. Later changes to these tables get their
    # own migration here (migrator.add_column, ...), never an edit of this one.
    class Frozen(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Workflow(Frozen):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        name = peewee.CharField(max_length=200)
        description = peewee.TextField(default="")
        entity_type = peewee.CharField(max_length=32)
        trigger = peewee.CharField(max_length=40)
        trigger_config = peewee.TextField()  # JSON
        conditions = peewee.TextField()  # JSON
        steps = peewee.TextField()  # JSON
        status = peewee.CharField(max_length=16)
        version = peewee.IntegerField(default=1)
        created_by = peewee.CharField(max_length=128)
        updated_by = peewee.CharField(max_length=128)
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()

        class Meta:
            table_name = "workflow"
            indexes = ((("tenant_id", "entity_type", "trigger", "status"), False),)

    class WorkflowVersion(Frozen):
        workflow = peewee.ForeignKeyField(Workflow, on_delete="CASCADE")
        version = peewee.IntegerField()
        definition = peewee.TextField()  # JSON
        status = peewee.CharField(max_length=16)
        created_by = peewee.CharField(max_length=128)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "workflow_version"
            indexes = ((("workflow", "version"), True),)

    class Execution(Frozen):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        workflow = peewee.ForeignKeyField(Workflow, on_delete="CASCADE")
        workflow_version = peewee.IntegerField()
        event_id = peewee.CharField(max_length=64)
        event = peewee.TextField()  # JSON
        entity_type = peewee.CharField(max_length=32)
        entity_id = peewee.CharField(max_length=64)
        status = peewee.CharField(max_length=20)
        attempts = peewee.IntegerField(default=0)
        error = peewee.TextField(null=True)
        job_id = peewee.CharField(max_length=64)
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()
        claimed_at = peewee.DateTimeField(null=True)
        started_at = peewee.DateTimeField(null=True)
        finished_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "execution"
            indexes = (
                (("workflow", "event_id"), True),
                (("tenant_id", "status", "created_at"), False),
                (("tenant_id", "entity_type", "entity_id"), False),
                (("status", "updated_at"), False),
            )

    class StepRun(Frozen):
        id = peewee.AutoField()
        execution = peewee.ForeignKeyField(Execution, on_delete="CASCADE")
        key = peewee.CharField(max_length=64)
        position = peewee.IntegerField()
        kind = peewee.CharField(max_length=40)
        attempt = peewee.IntegerField()
        status = peewee.CharField(max_length=16)
        output = peewee.TextField(null=True)  # JSON
        branch = peewee.TextField(null=True)  # JSON
        error = peewee.TextField(null=True)
        started_at = peewee.DateTimeField()
        finished_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "step_run"
            indexes = ((("execution", "key", "attempt"), True),)

    class Task(Frozen):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        execution = peewee.ForeignKeyField(Execution, null=True, on_delete="SET NULL")
        step_key = peewee.CharField(max_length=64, null=True)
        title = peewee.CharField(max_length=300)
        description = peewee.TextField(default="")
        assignee = peewee.CharField(max_length=128, null=True)
        assignee_role = peewee.CharField(max_length=32, null=True)
        entity_type = peewee.CharField(max_length=32)
        entity_id = peewee.CharField(max_length=64)
        status = peewee.CharField(max_length=16)
        due_at = peewee.DateTimeField(null=True)
        created_at = peewee.DateTimeField()
        completed_at = peewee.DateTimeField(null=True)
        completed_by = peewee.CharField(max_length=128, null=True)

        class Meta:
            table_name = "task"
            indexes = (
                (("execution", "step_key"), True),
                (("tenant_id", "assignee", "status"), False),
                (("tenant_id", "assignee_role", "status"), False),
            )

    class Assignment(Frozen):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        execution = peewee.ForeignKeyField(Execution, null=True, on_delete="SET NULL")
        step_key = peewee.CharField(max_length=64, null=True)
        entity_type = peewee.CharField(max_length=32)
        entity_id = peewee.CharField(max_length=64)
        assignee = peewee.CharField(max_length=128)
        purpose = peewee.CharField(max_length=64)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "assignment"
            indexes = (
                (("execution", "step_key", "assignee"), True),
                (("tenant_id", "entity_type", "entity_id"), False),
            )

    class Notification(Frozen):
        id = peewee.CharField(max_length=36, primary_key=True)
        tenant_id = peewee.CharField(max_length=64)
        recipient = peewee.CharField(max_length=128, null=True)
        recipient_role = peewee.CharField(max_length=32, null=True)
        address = peewee.CharField(max_length=170)
        channel = peewee.CharField(max_length=16)
        execution = peewee.ForeignKeyField(Execution, null=True, on_delete="SET NULL")
        step_key = peewee.CharField(max_length=64, null=True)
        subject = peewee.CharField(max_length=300)
        body = peewee.TextField(default="")
        entity_type = peewee.CharField(max_length=32, null=True)
        entity_id = peewee.CharField(max_length=64, null=True)
        created_at = peewee.DateTimeField()
        read_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "notification"
            indexes = (
                (("execution", "step_key", "address"), True),
                (("tenant_id", "recipient", "created_at"), False),
                (("tenant_id", "recipient_role", "created_at"), False),
            )

    class RejectedMessage(Frozen):
        id = peewee.AutoField()
        message_id = peewee.CharField(max_length=64)
        queue_name = peewee.CharField(max_length=64)
        actor_name = peewee.CharField(max_length=64)
        reason = peewee.TextField()
        payload = peewee.TextField()
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "rejected_message"

    db.create_tables(
        [
            Workflow,
            WorkflowVersion,
            Execution,
            StepRun,
            Task,
            Assignment,
            Notification,
            RejectedMessage,
        ]
    )


def _allow_unknown_users(db: peewee.Database, migrator: SchemaMigrator) -> None:
    # Checked first: before migration 1 was frozen it created the tables from the
    # models of its day, so a database made then may have the column.
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
