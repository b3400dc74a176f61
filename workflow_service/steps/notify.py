"""``notify``: tell people about an entity, on one or more channels.

Options: ``recipients`` (see :mod:`.recipients`), ``channels`` (default ``["in_app"]``),
``subject`` and ``body`` (sandboxed templates over ``entity``, ``event``, ``execution``).

Channels are handlers in :data:`CHANNELS`; ``in_app`` writes inbox rows in the step's
transaction (unique per execution, step and address, so never twice: no queue hop is
needed for that). Features declare further channels in their ``FEATURE``
(``channels={"email": handler}``), which :func:`register_channel` adds when the
features are installed; ``handler(ctx, addresses, subject, body, config)`` returns a
JSON-able summary for the step log. The ``webhook`` channel posts to the step's ``webhook_url``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from shared.db import utcnow
from shared.sql import CompiledInsert
from workflow_service import templating
from workflow_service.models import Notification
from workflow_service.steps import webhook_urls
from workflow_service.steps.base import (
    MAX_RECIPIENTS,
    Step,
    StepConfig,
    StepContext,
    StepOutcome,
    Template,
)
from workflow_service.steps.recipients import Address, Recipient, resolve

ChannelHandler = Callable[[StepContext, list[Address], str, str, "NotifyConfig"], Any]

_INSERT_NOTIFICATION = CompiledInsert(Notification, ignore_conflicts=True)


def deliver_in_app(
    ctx: StepContext,
    addresses: list[Address],
    subject: str,
    body: str,
    config: NotifyConfig | None = None,
) -> Any:
    now = utcnow()
    rows = [
        {
            "id": ctx.message_id(address.key),
            "tenant_id": ctx.execution.tenant_id,
            "recipient": address.user,
            "recipient_role": address.role,
            "address": address.key,
            "channel": "in_app",
            "execution": ctx.execution.id,
            "step_key": ctx.step_key,
            "subject": subject[:300],
            "body": body,
            "entity_type": ctx.trigger.entity_type,
            "entity_id": ctx.trigger.entity_id,
            "created_at": now,
        }
        for address in addresses
    ]
    for row in rows:
        _INSERT_NOTIFICATION.execute(ctx.db, row)
    return {"delivered": [a.key for a in addresses]}


CHANNELS: dict[str, ChannelHandler] = {"in_app": deliver_in_app}


def register_channel(name: str, handler: ChannelHandler) -> None:
    """Deliver ``notify`` on channel ``name`` with ``handler`` (once per process)."""
    existing = CHANNELS.get(name)
    if existing is not None and existing is not handler:
        raise RuntimeError(f"notify channel {name!r} is registered twice")
    CHANNELS[name] = handler


#: A webhook address: scheme, host and port checked when the workflow is saved (and a
#: literal private address refused, see :func:`.webhook_urls.check_saved_url`); the
#: addresses its name resolves to are checked again at every delivery.
HttpUrl = Annotated[
    str, Field(min_length=1, max_length=512), AfterValidator(webhook_urls.check_saved_url)
]


class NotifyConfig(StepConfig):
    recipients: list[Recipient] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    channels: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=lambda: ["in_app"], min_length=1, max_length=8
    )
    subject: Template = Field(min_length=1, max_length=300)
    body: Template = Field(default="", max_length=templating.MAX_TEMPLATE_CHARS)
    #: Where the ``webhook`` channel posts (one signed POST per recipient).
    webhook_url: HttpUrl | None = None

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, channels: list[str]) -> list[str]:
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}; channels: {', '.join(CHANNELS)}")
        return channels

    @model_validator(mode="after")
    def _webhook_needs_a_url(self) -> NotifyConfig:
        if "webhook" in self.channels and not self.webhook_url:
            raise ValueError("the webhook channel needs webhook_url")
        return self


class Notify(Step):
    kind = "notify"
    Config = NotifyConfig

    _rendered: tuple[str, str] | None = None

    def prepare(self, ctx: StepContext) -> None:
        config: NotifyConfig = self.config  # type: ignore[assignment]
        self._rendered = (ctx.render(config.subject), ctx.render(config.body))

    def run(self, ctx: StepContext) -> StepOutcome:
        config: NotifyConfig = self.config  # type: ignore[assignment]
        if self._rendered is None:
            self.prepare(ctx)
        subject, body = self._rendered  # type: ignore[misc]
        addresses, skipped = resolve(config.recipients, ctx)
        output: dict[str, Any] = {"subject": subject, "recipients": [a.key for a in addresses]}
        if skipped:
            output["skipped"] = skipped
        for channel in config.channels:
            output[channel] = CHANNELS[channel](ctx, addresses, subject, body, config)
        return StepOutcome.completed(output)
