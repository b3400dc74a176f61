"""Request and response models of the admin API (validation and the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import EntityType
from workflow_service.definitions import Condition, Trigger, WorkflowDefinition


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowCreate(WorkflowDefinition):
    """A workflow definition; ``status`` defaults to inactive (activate when ready)."""

    status: Literal["active", "inactive"] = "inactive"


class WorkflowPatch(Strict):
    """Fields to change; the result is validated whole and stored as a new version.
    The version the change is based on is required, as ``version`` or in ``If-Match``
    (missing: 428; not the current one: 412)."""

    version: int | None = Field(default=None, ge=1)
    name: str | None = None
    description: str | None = None
    entity_type: EntityType | None = None
    trigger: Trigger | None = None
    trigger_config: dict[str, Any] | None = None
    conditions: list[Condition] | None = None
    steps: list[dict[str, Any]] | None = None
    allow_unknown_users: bool | None = None


class WorkflowOut(BaseModel):
    id: str
    tenant_id: str
    name: str
    description: str
    entity_type: str
    trigger: str
    trigger_config: dict[str, Any]
    conditions: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    allow_unknown_users: bool = False
    status: str
    version: int
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime


class WorkflowListOut(BaseModel):
    items: list[WorkflowOut]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


class WorkflowVersionOut(BaseModel):
    version: int
    status: str
    definition: dict[str, Any]
    created_by: str
    created_at: datetime


class WorkflowVersionListOut(BaseModel):
    items: list[WorkflowVersionOut]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


class RunRequest(Strict):
    #: The entity to run for: loaded from the api (404 when it has no such entity).
    entity_id: str = Field(min_length=1, max_length=64)
    #: Further values the steps see beside the entity's own fields; a field the api
    #: returns (``owner``, ``created_by``, ``title``...) is always the api's.
    data: dict[str, Any] = Field(default_factory=dict)


class JobRef(BaseModel):
    id: str
    href: str


class RunAccepted(BaseModel):
    execution_id: str
    status: str
    job: JobRef


class StepRunOut(BaseModel):
    key: str
    position: int
    kind: str
    attempt: int
    status: str
    output: dict[str, Any] | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class ExecutionOut(BaseModel):
    id: str
    tenant_id: str
    workflow_id: str
    #: The workflow's name now.
    workflow_name: str | None = None
    workflow_version: int
    event_id: str
    #: Null for an execution whose stored event names none.
    event_type: str | None
    entity_type: str
    entity_id: str
    #: The entity's title as the triggering event saw it.
    entity_title: str | None = None
    status: str
    attempts: int
    error: str | None
    job: JobRef
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepRunOut] | None = None


class ExecutionListOut(BaseModel):
    items: list[ExecutionOut]
    next_cursor: str | None


class TaskOut(BaseModel):
    id: str
    title: str
    description: str
    assignee: str | None
    assignee_role: str | None
    entity_type: str
    entity_id: str
    execution_id: str | None
    status: str
    due_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None


class TaskListOut(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


class NotificationOut(BaseModel):
    id: str
    subject: str
    body: str
    recipient: str | None
    recipient_role: str | None
    entity_type: str | None
    entity_id: str | None
    execution_id: str | None
    created_at: datetime
    read_at: datetime | None


class NotificationListOut(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None
    unread: int
