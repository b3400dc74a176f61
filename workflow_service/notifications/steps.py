"""Plugs e-mail and webhooks into ``notify`` and adds the ``webhook`` step kind.

Both plan rows on the delivery table inside the step's transaction (so a retried step
plans nothing twice) and send one ``deliver_notification`` message per row. Delivery
ids are derived from (execution, step, recipient, channel): if the step's transaction
rolls back after a message went out, the retried step plans the same id and the early
message still finds its row.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from workflow_service.notifications import delivery
from workflow_service.notifications.models import Channel
from workflow_service.steps import Step, StepConfig, StepContext, StepOutcome
from workflow_service.steps.notify import HttpUrl, NotifyConfig
from workflow_service.steps.recipients import Address
from workflow_service.users import directory


def _plan_and_send(ctx: StepContext, items: list[delivery.PlannedDelivery]) -> list[str]:
    ids = delivery.plan(
        tenant_id=ctx.execution.tenant_id,
        execution_id=ctx.execution.id,
        step_key=ctx.step_key,
        entity_type=ctx.trigger.entity_type,
        entity_id=ctx.trigger.entity_id,
        items=items,
    )
    for delivery_id_ in ids:
        ctx.enqueue(delivery.delivery_message(delivery_id_, ctx.execution.tenant_id))
    return ids


def deliver_email(
    ctx: StepContext, addresses: list[Address], subject: str, body: str, config: NotifyConfig
) -> Any:
    """``notify`` channel ``email``: one delivery per user with an e-mail address."""
    items, skipped = [], []
    for address in addresses:
        if address.user is None:
            skipped.append(f"{address.key} (a role with no directory users)")
            continue
        user = directory.get_user(ctx.execution.tenant_id, address.user)
        if user is None or not user.email or not user.active:
            skipped.append(f"{address.key} (no e-mail address in the user directory)")
            continue
        items.append(
            delivery.PlannedDelivery(
                recipient=address.user,
                channel=Channel.EMAIL,
                address=user.email,
                subject=subject,
                body=body,
            )
        )
    ids = _plan_and_send(ctx, items)
    return {
        "queued": [f"user:{i.recipient}" for i in items],
        "deliveries": ids,
        **({"skipped": skipped} if skipped else {}),
    }


def deliver_webhook(
    ctx: StepContext, addresses: list[Address], subject: str, body: str, config: NotifyConfig
) -> Any:
    """``notify`` channel ``webhook``: one signed POST to ``webhook_url`` per recipient."""
    url = config.webhook_url or ""
    items = [
        delivery.PlannedDelivery(
            recipient=address.key,
            channel=Channel.WEBHOOK,
            address=url,
            payload={
                **_about(ctx),
                "recipient": {"user": address.user, "role": address.role},
                "subject": subject,
                "body": body,
            },
        )
        for address in addresses
    ]
    return {"url": url, "deliveries": _plan_and_send(ctx, items)}


#: The ``notify`` channels this feature delivers (declared in its ``FEATURE``).
CHANNELS = {Channel.EMAIL: deliver_email, Channel.WEBHOOK: deliver_webhook}


def _about(ctx: StepContext) -> dict[str, Any]:
    """What every webhook document says about the execution and its entity."""
    return {
        "workflow": ctx.workflow_name,
        "execution_id": ctx.execution.id,
        "step": ctx.step_key,
        "event": ctx.trigger.envelope,
        "entity": {
            **ctx.trigger.data,
            "id": ctx.trigger.entity_id,
            "type": ctx.trigger.entity_type,
        },
    }


class WebhookConfig(StepConfig):
    url: HttpUrl
    #: Static JSON sent as ``data`` beside the entity, event and execution.
    data: dict[str, Any] = Field(default_factory=dict)


class Webhook(Step):
    """POST a signed JSON document about the entity to ``url`` (via the notification queue)."""

    kind = "webhook"
    Config = WebhookConfig

    def run(self, ctx: StepContext) -> StepOutcome:
        config: WebhookConfig = self.config  # type: ignore[assignment]
        payload = {**_about(ctx), "data": config.data}
        item = delivery.PlannedDelivery(
            recipient=config.url, channel=Channel.WEBHOOK, address=config.url, payload=payload
        )
        ids = _plan_and_send(ctx, [item])
        return StepOutcome.completed({"url": config.url, "deliveries": ids})
