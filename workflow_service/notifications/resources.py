"""``/deliveries``: what was sent (or not) by e-mail and webhook, with the answers;
``/webhook-secret``: the tenant's webhook signing secret, for its admin.

The log names recipients and holds what outside receivers answered, so it is for the
people who build and troubleshoot workflows (editors, admins, services), not for every
reader of the tenant.
"""

from __future__ import annotations

import falcon
from pydantic import BaseModel

from shared.http import ApiDocs, Param, parse_choice, parse_limit, route
from workflow_service.notifications import secrets
from workflow_service.notifications.models import Channel, Delivery, DeliveryStatus
from workflow_service.settings import NotificationSettings
from workflow_service.steps import webhook_urls
from workflow_service.steps.webhook_urls import for_reader
from workflow_service.web.common import after_cursor, next_cursor, page_cursor

STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, *DeliveryStatus.FINAL)
ROLES = ("editor", "auditor")  # the workflow web refuses service tokens


class DeliveryCollection:
    docs = {
        "GET": route(
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
        principal = req.context.principal
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
        resp.media = {
            "items": [_delivery_body(d, principal) for d in rows],
            "next_cursor": next_cursor(rows, limit),
        }


def _delivery_body(d: Delivery, principal) -> dict:
    """A delivery as ``principal`` may see it; a webhook's carries its ``url``."""
    body = d.to_dict()
    if d.channel != Channel.WEBHOOK:
        return body
    body["url"] = d.address or d.recipient
    shown = for_reader(principal, body)
    if d.recipient == body["url"]:  # a webhook step's recipient is its URL
        shown["recipient"] = shown["url"]
    return shown


class KeyInfo(BaseModel):
    generation: int
    created_at: str
    created_by: str | None = None


class PreviousKeyInfo(BaseModel):
    generation: int
    created_at: str
    accepted_until: str


class WebhookSecretOut(BaseModel):
    tenant_id: str
    current: KeyInfo | None
    previous: PreviousKeyInfo | None
    grace_seconds: float


class WebhookSecretRotated(BaseModel):
    secret: str
    generation: int
    created_at: str
    previous_accepted_until: str | None


class WebhookSecretItem:
    docs = {
        "GET": route(
            "The tenant's webhook signing secret: its generation and dates, never the secret",
            response=WebhookSecretOut,
            roles=("admin",),
        )
    }

    def __init__(self, settings: NotificationSettings):
        self.settings = settings

    def on_get(self, req, resp):
        principal = req.context.principal
        resp.media = secrets.describe(principal.tenant, self.settings)


class WebhookSecretRotation:
    docs = {
        "POST": route(
            "Make a new webhook signing secret and show it, this once; the previous one "
            "keeps signing for WEBHOOK_SECRET_GRACE_SECONDS",
            response=WebhookSecretRotated,
            status=201,
            errors=(409,),
            roles=("admin",),
        )
    }

    def __init__(self, settings: NotificationSettings):
        self.settings = settings

    def on_post(self, req, resp):
        principal = req.context.principal
        try:
            rotation = secrets.rotate(principal.tenant, principal.sub, self.settings)
        except secrets.RotationConflict:
            raise falcon.HTTPConflict(
                title="Rotation in progress",
                description="Another rotation of this tenant's webhook secret happened at the "
                "same moment; read GET /webhook-secret and rotate again if needed.",
            ) from None
        until = rotation.previous_accepted_until
        resp.status = falcon.HTTP_201
        resp.set_header("Cache-Control", "no-store")
        resp.media = {
            "secret": rotation.secret,
            "generation": rotation.key.generation,
            "created_at": rotation.key.created_at.isoformat() + "Z",
            "previous_accepted_until": until.isoformat() + "Z" if until else None,
        }


def add_routes(app: falcon.App, docs: ApiDocs, settings: NotificationSettings) -> None:
    docs.add_route(app, "/deliveries", DeliveryCollection())
    docs.add_route(app, "/webhook-secret", WebhookSecretItem(settings))
    docs.add_route(app, "/webhook-secret/rotate", WebhookSecretRotation(settings))


def register(app: falcon.App, docs: ApiDocs, context) -> None:
    """Route registrar for the admin web: /deliveries, /webhook-secret. Also tells the
    step options whether webhooks may name private addresses (checked on save)."""
    settings = context.settings.notifications
    webhook_urls.configure(allow_private=settings.webhook_allow_private)
    add_routes(app, docs, settings)
