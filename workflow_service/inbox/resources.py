"""``/notifications``: the caller's in-app inbox (what ``notify``'s ``in_app`` channel
wrote to them or to one of their roles)."""

from __future__ import annotations

import falcon

from shared.auth import ROLES
from shared.db import utcnow
from shared.http import Param, parse_choice, parse_limit, route
from workflow_service.models import Notification
from workflow_service.web.common import (
    addressed_to,
    after_cursor,
    next_cursor,
    not_found,
    page_cursor,
    uuid_param,
)
from workflow_service.web.schemas import NotificationListOut, NotificationOut
from workflow_service.web.serialize import notification_body

LIST_PARAMS = (Param("limit", schema={"type": "integer"}), Param("cursor"))


def _mine(principal):
    return addressed_to(
        principal, Notification.tenant_id, Notification.recipient, Notification.recipient_role
    )


class NotificationCollection:
    docs = {
        "GET": route(
            "My in-app notifications, newest first",
            response=NotificationListOut,
            params=(Param("unread", description="true: only unread ones"), *LIST_PARAMS),
            errors=(400,),
            roles=ROLES,
        )
    }

    def on_get(self, req, resp):
        principal = req.context.principal
        limit = parse_limit(req)
        mine = _mine(principal)
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
        "POST": route(
            "Mark one of my notifications read",
            response=NotificationOut,
            errors=(400, 404),
            roles=ROLES,
        )
    }

    def on_post(self, req, resp, notification_id):
        principal = req.context.principal
        notification_id = uuid_param(notification_id, "notification_id")
        mine = _mine(principal)
        note = Notification.get_or_none((Notification.id == notification_id) & mine)
        if note is None:
            raise not_found("notification", notification_id)
        Notification.update(read_at=utcnow()).where(
            (Notification.id == note.id) & Notification.read_at.is_null()
        ).execute()
        resp.media = notification_body(Notification.get_by_id(note.id))


def register(app: falcon.App, docs, context) -> None:
    docs.add_route(app, "/notifications", NotificationCollection())
    docs.add_route(app, "/notifications/{notification_id}/read", NotificationRead())
