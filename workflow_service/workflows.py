"""Workflow definitions: create, edit (every edit is a new version), status changes.

Every change commits the workflow row and its version snapshot together, then bumps
the tenant's cache version in Redis so workers reload their active workflows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import peewee

from shared.db import is_postgres, utcnow
from workflow_service.definitions import WorkflowDefinition, validate_definition
from workflow_service.kernel import hooks
from workflow_service.models import Execution, Workflow, WorkflowStatus, WorkflowVersion

#: The audit action of each status a workflow is moved to.
STATUS_ACTIONS = {
    WorkflowStatus.ACTIVE: "activated",
    WorkflowStatus.INACTIVE: "deactivated",
    WorkflowStatus.ARCHIVED: "archived",
}


class WorkflowNotFound(LookupError):
    pass


class WorkflowInUse(Exception):
    """A workflow with executions cannot be deleted (archive it instead)."""


class WorkflowArchived(Exception):
    """An archived workflow is history: it is not edited."""


class StaleVersion(Exception):
    """An edit based on a version that is no longer the current one."""

    def __init__(self, expected: int, current: int):
        super().__init__(f"expected version {expected}, the workflow is at version {current}")
        self.expected = expected
        self.current = current


class WorkflowStore:
    def __init__(
        self,
        db: peewee.Database | peewee.DatabaseProxy,
        invalidate: Callable[[str], None] = lambda tenant_id: None,
    ):
        self.db = db
        self.invalidate = invalidate

    def get(self, tenant_id: str, workflow_id: str) -> Workflow:
        workflow = Workflow.get_or_none(
            (Workflow.id == workflow_id) & (Workflow.tenant_id == tenant_id)
        )
        if workflow is None:
            raise WorkflowNotFound(workflow_id)
        return workflow

    def list(self, tenant_id: str, **filters: str | None):
        query = Workflow.select().where(Workflow.tenant_id == tenant_id)
        for name in ("status", "entity_type", "trigger"):
            if filters.get(name):
                query = query.where(getattr(Workflow, name) == filters[name])
        return query.order_by(Workflow.created_at.desc(), Workflow.id)

    def create(
        self, tenant_id: str, actor: str, definition: WorkflowDefinition, status: str
    ) -> Workflow:
        now = utcnow()
        with self.db.atomic():
            workflow = Workflow.create(
                tenant_id=tenant_id,
                **definition.stored(),
                status=status,
                version=1,
                created_by=actor,
                updated_by=actor,
                created_at=now,
                updated_at=now,
            )
            self._snapshot(workflow, actor)
            hooks.workflow_changed(workflow, "created", actor)
        self.invalidate(tenant_id)
        return workflow

    def update(
        self,
        tenant_id: str,
        workflow_id: str,
        actor: str,
        changes: dict[str, Any],
        expected_version: int | None = None,
    ) -> Workflow:
        """Apply ``changes`` (any definition fields) as a new version; validated whole.

        With ``expected_version``, raise :class:`StaleVersion` unless the workflow is
        still at that version; :class:`WorkflowArchived` once it is archived. The checks
        run on the locked row, so of two edits based on the same version exactly one
        wins, and no edit lands after an archive.
        """
        with self.db.atomic():
            workflow = self._locked(tenant_id, workflow_id)
            if workflow.status == WorkflowStatus.ARCHIVED:
                raise WorkflowArchived(workflow_id)
            if expected_version is not None and workflow.version != expected_version:
                raise StaleVersion(expected_version, workflow.version)
            definition = validate_definition({**workflow.definition(), **changes})
            for name, value in definition.stored().items():
                setattr(workflow, name, value)
            self._bump(workflow, actor)
            hooks.workflow_changed(workflow, "updated", actor, changed=sorted(changes))
        self.invalidate(tenant_id)
        return workflow

    def set_status(self, tenant_id: str, workflow_id: str, actor: str, status: str) -> Workflow:
        assert status in WorkflowStatus.ALL
        with self.db.atomic():
            workflow = self._locked(tenant_id, workflow_id)
            if workflow.status != status:
                workflow.status = status
                self._bump(workflow, actor)
                hooks.workflow_changed(workflow, STATUS_ACTIONS[status], actor)
        self.invalidate(tenant_id)
        return workflow

    def delete(self, tenant_id: str, workflow_id: str) -> None:
        with self.db.atomic():
            workflow = self._locked(tenant_id, workflow_id)
            if Execution.select().where(Execution.workflow == workflow.id).exists():
                raise WorkflowInUse(workflow_id)
            WorkflowVersion.delete().where(WorkflowVersion.workflow == workflow.id).execute()
            workflow.delete_instance()
            hooks.workflow_changed(workflow, "deleted", None)
        self.invalidate(tenant_id)

    def versions(self, workflow: Workflow):
        return (
            WorkflowVersion.select()
            .where(WorkflowVersion.workflow == workflow.id)
            .order_by(WorkflowVersion.version.desc())
        )

    def _locked(self, tenant_id: str, workflow_id: str) -> Workflow:
        query = Workflow.select().where(
            (Workflow.id == workflow_id) & (Workflow.tenant_id == tenant_id)
        )
        # A DatabaseProxy's obj is the Database it stands for.
        if is_postgres(cast(peewee.Database, getattr(self.db, "obj", self.db))):
            query = query.for_update()
        workflow = query.first()
        if workflow is None:
            raise WorkflowNotFound(workflow_id)
        return workflow

    def _bump(self, workflow: Workflow, actor: str) -> None:
        workflow.version += 1
        workflow.updated_by = actor
        workflow.updated_at = utcnow()
        workflow.save()
        self._snapshot(workflow, actor)

    def _snapshot(self, workflow: Workflow, actor: str) -> None:
        WorkflowVersion.create(
            workflow=workflow.id,
            version=workflow.version,
            definition=workflow.definition(),
            status=workflow.status,
            created_by=actor,
            created_at=workflow.updated_at,
        )
