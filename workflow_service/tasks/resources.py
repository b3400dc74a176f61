"""``/tasks``: the caller's own to-dos (assigned to them or to one of their roles)."""

from __future__ import annotations

import falcon

from shared.auth import ROLES
from shared.db import utcnow
from shared.http import Param, parse_choice, parse_limit, route
from workflow_service.db import database
from workflow_service.kernel import hooks
from workflow_service.models import Task
from workflow_service.web.common import (
    addressed_to,
    after_cursor,
    next_cursor,
    not_found,
    page_cursor,
    uuid_param,
)
from workflow_service.web.schemas import TaskListOut, TaskOut
from workflow_service.web.serialize import task_body

LIST_PARAMS = (Param("limit", schema={"type": "integer"}), Param("cursor"))


def _mine(principal):
    return addressed_to(principal, Task.tenant_id, Task.assignee, Task.assignee_role)


class TaskCollection:
    docs = {
        "GET": route(
            "My tasks (assigned to me or to one of my roles)",
            response=TaskListOut,
            params=(Param("status", description="open or completed"), *LIST_PARAMS),
            errors=(400,),
            roles=ROLES,
        )
    }

    def on_get(self, req, resp):
        principal = req.context.principal
        limit = parse_limit(req)
        query = Task.select().where(_mine(principal))
        status = parse_choice(req, "status", ("open", "completed"))
        if status:
            query = query.where(Task.status == status)
        rows = list(after_cursor(query, Task, page_cursor(req)).limit(limit))
        resp.media = {
            "items": [task_body(t) for t in rows],
            "next_cursor": next_cursor(rows, limit),
        }


class TaskComplete:
    docs = {
        "POST": route(
            "Complete one of my tasks", response=TaskOut, errors=(400, 404, 409), roles=ROLES
        )
    }

    def on_post(self, req, resp, task_id):
        principal = req.context.principal
        task_id = uuid_param(task_id, "task_id")
        task = Task.get_or_none((Task.id == task_id) & _mine(principal))
        if task is None:
            raise not_found("task", task_id)
        with database.atomic():
            done = (
                Task.update(status="completed", completed_at=utcnow(), completed_by=principal.sub)
                .where((Task.id == task.id) & (Task.status == "open"))
                .execute()
            )
            if done:
                hooks.task_recorded(task.tenant_id, task.id, "completed", principal.sub)
        if not done:
            raise falcon.HTTPConflict(
                title="Task already completed",
                description=f"The task was completed by {task.completed_by}.",
            )
        resp.media = task_body(Task.get_by_id(task.id))


def register(app: falcon.App, docs, context) -> None:
    docs.add_route(app, "/tasks", TaskCollection())
    docs.add_route(app, "/tasks/{task_id}/complete", TaskComplete())
