"""``/tasks`` and ``/notifications``: the caller's own to-dos and in-app inbox.

Rows addressed to one of the caller's roles (written when no user directory expands
roles into users) are part of everyone's list who holds that role.
"""

from __future__ import annotations

import falcon

from shared.auth import ROLES, principal_of
from shared.db import utcnow
from shared.http import Operation, Param, parse_choice, parse_limit
from workflow_service.audit.record import record_task
from workflow_service.db import database
from workflow_service.models import Notification, Task
from workflow_service.web.common import (
    after_cursor,
    next_cursor,
    not_found,
    page_cursor,
    uuid_param,
)
from workflow_service.web.schemas import NotificationListOut, NotificationOut, TaskListOut, TaskOut
from workflow_service.web.serialize import notification_body, task_body

LIST_PARAMS = (Param("limit", schema={"type": "integer"}), Param("cursor"))


def _mine(model, principal):
    role_column = model.assignee_role if model is Task else model.recipient_role
    user_column = model.assignee if model is Task else model.recipient
    roles = sorted(r for r in principal.roles if r in ROLES)
    mine = user_column == principal.sub
    if roles:
        mine = mine | role_column.in_(roles)
    return (model.tenant_id == principal.tenant) & mine


class TaskCollection:
    docs = {
        "GET": Operation(
            "My tasks (assigned to me or to one of my roles)",
            response=TaskListOut,
            params=(Param("status", description="open or completed"), *LIST_PARAMS),
            errors=(400,),
        )
    }

    def on_get(self, req, resp):
        principal = principal_of(req)
        limit = parse_limit(req)
        query = Task.select().where(_mine(Task, principal))
        status = parse_choice(req, "status", ("open", "completed"))
        if status:
            query = query.where(Task.status == status)
        rows = list(after_cursor(query, Task, page_cursor(req)).limit(limit))
        resp.media = {
            "items": [task_body(t) for t in rows],
            "next_cursor": next_cursor(rows, limit),
        }


class TaskComplete:
    docs = {"POST": Operation("Complete one of my tasks", response=TaskOut, errors=(400, 404, 409))}

    def on_post(self, req, resp, task_id):
        principal = principal_of(req)
        task_id = uuid_param(task_id, "task_id")
        task = Task.get_or_none((Task.id == task_id) & _mine(Task, principal))
        if task is None:
            raise not_found("task", task_id)
        with database.atomic():
            done = (
                Task.update(status="completed", completed_at=utcnow(), completed_by=principal.sub)
                .where((Task.id == task.id) & (Task.status == "open"))
                .execute()
            )
            if done:
                record_task(task.tenant_id, task.id, "completed", principal.sub)
        if not done:
            raise falcon.HTTPConflict(
                title="Task already completed",
                description=f"The task was completed by {task.completed_by}.",
            )
        resp.media = task_body(Task.get_by_id(task.id))


class NotificationCollection:
    docs = {
        "GET": Operation(
            "My in-app notifications, newest first",
            response=NotificationListOut,
            params=(Param("unread", description="true: only unread ones"), *LIST_PARAMS),
            errors=(400,),
        )
    }

    def on_get(self, req, resp):
        principal = principal_of(req)
        limit = parse_limit(req)
        mine = _mine(Notification, principal)
        query = Notification.select().where(mine)
        if parse_choice(req, "unread", ("true", "false")) == "true":
            query = query.where(Notification.read_at.is_null())
        rows = list(after_cursor(query, Notification, page_cursor(req)).limit(limit))
        unread = Notification.select().where(mine & Notification.read_at.is_null()).count()
        resp.media = {
            "items": [notification_body(n) for n in rows],
            "next_cursor": next_cursor(rows, limit),
            "unread": unread,
        }


class NotificationRead:
    docs = {
        "POST": Operation(
            "Mark one of my notifications read", response=NotificationOut, errors=(400, 404)
        )
    }

    def on_post(self, req, resp, notification_id):
        principal = principal_of(req)
        notification_id = uuid_param(notification_id, "notification_id")
        mine = _mine(Notification, principal)
        note = Notification.get_or_none((Notification.id == notification_id) & mine)
        if note is None:
            raise not_found("notification", notification_id)
        Notification.update(read_at=utcnow()).where(
            (Notification.id == note.id) & Notification.read_at.is_null()
        ).execute()
        resp.media = notification_body(Notification.get_by_id(note.id))


def add_inbox_routes(app, docs) -> None:
    docs.add_route(app, "/tasks", TaskCollection())
    docs.add_route(app, "/tasks/{task_id}/complete", TaskComplete())
    docs.add_route(app, "/notifications", NotificationCollection())
    docs.add_route(app, "/notifications/{notification_id}/read", NotificationRead())
