"""``/deliveries``: what was sent (or not) by e-mail and webhook, with the answers.

The log names recipients and holds what outside receivers answered, so it is for the
people who build and troubleshoot workflows (editors, admins, services), not for every
reader of the tenant.
"""

from __future__ import annotations

import falcon

from shared.auth import require_role
from shared.http import ApiDocs, Operation, Param, parse_choice, parse_limit
from workflow_service.notifications.models import Channel, Delivery, DeliveryStatus
from workflow_service.web.common import after_cursor, next_cursor, page_cursor

STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, *DeliveryStatus.FINAL)
ROLES = ("editor", "service")


class DeliveryCollection:
    docs = {
        "GET": Operation(
            "Notification deliveries (newest first) with attempts and the last answer",
            params=(
                Param("execution_id"),
                Param("status", description=", ".join(STATUSES)),
                Param("channel", description=", ".join(Channel.ALL)),
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
                Param("cursor"),
            ),
            errors=(400,),
            roles=(*ROLES, "admin"),
        )
    }

    def on_get(self, req, resp):
        principal = require_role(req, *ROLES)
        query = Delivery.select().where(Delivery.tenant_id == principal.tenant)
        execution_id = req.get_param("execution_id")
        if execution_id:
            query = query.where(Delivery.execution == execution_id)
        status = parse_choice(req, "status", STATUSES)
        if status:
            query = query.where(Delivery.status == status)
        channel = parse_choice(req, "channel", Channel.ALL)
        if channel:
            query = query.where(Delivery.channel == channel)
        limit = parse_limit(req)
        rows = list(after_cursor(query, Delivery, page_cursor(req)).limit(limit))
        resp.media = {"items": [d.to_dict() for d in rows], "next_cursor": next_cursor(rows, limit)}


def add_routes(app: falcon.App, docs: ApiDocs) -> None:
    docs.add_route(app, "/deliveries", DeliveryCollection())


def register(app: falcon.App, docs: ApiDocs, context) -> None:
    """Route registrar for the admin web: /deliveries."""
    add_routes(app, docs)
