"""``change_status``: move the entity to another status through the api.

``POST /<collection>/{id}/transitions`` (the collection from :mod:`shared.lifecycles`)
with ``{"to", "comment"}``, a service token of the execution's tenant, an
``Idempotency-Key`` (an HMAC of execution and step; a retry after a lost answer
replays the first answer instead of moving twice) and the causation chain (the api
passes it on in the event the change emits, which is how loops stop).

Connection errors, timeouts, 408, 429 and 5xx are retried; other answers (409 for a
transition the lifecycle forbids, 404, 403...) fail the execution with the api's words.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import Field

from shared.events import CAUSATION_HEADER, INITIATOR_HEADER
from shared.lifecycles import lifecycle_of
from workflow_service.steps.base import (
    Step,
    StepConfig,
    StepContext,
    StepFailed,
    StepOutcome,
    Template,
)

RETRYABLE_STATUS = {408, 429}


class ApiUnavailable(Exception):
    """The api answered with a status worth retrying."""


class ChangeStatusConfig(StepConfig):
    to: str = Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    #: A template, like notify's subject.
    comment: Template | None = Field(default=None, max_length=2000)


class ChangeStatus(Step):
    kind = "change_status"
    Config = ChangeStatusConfig
    transactional = False  # an HTTP side effect, made idempotent by the key

    def run(self, ctx: StepContext) -> StepOutcome:
        config: ChangeStatusConfig = self.config  # type: ignore[assignment]
        trigger = ctx.trigger
        lifecycle = lifecycle_of(trigger.entity_type)
        if lifecycle is None:
            raise StepFailed(f"the api has no {trigger.entity_type} entities to move")
        path = f"/{lifecycle.collection}/{quote(trigger.entity_id, safe='')}/transitions"
        body = {"to": config.to}
        if config.comment:
            body["comment"] = ctx.render(config.comment)
        response = ctx.api.request(
            "POST",
            path,
            ctx.execution.tenant_id,
            json=body,
            headers={
                "Idempotency-Key": ctx.idempotency_key,
                CAUSATION_HEADER: ",".join(trigger.caused_chain()),
                **({INITIATOR_HEADER: trigger.initiator} if trigger.initiator else {}),
                **self.extra_headers(ctx),
            },
        )
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
            raise ApiUnavailable(f"api answered {response.status_code} on POST {path}")
        answer = _json(response)
        if response.status_code >= 400:
            described = answer.get("description") or answer.get("title") or response.text[:300]
            raise StepFailed(
                f"api refused the move to {config.to!r} ({response.status_code}): {described}"
            )
        return StepOutcome.completed(
            {
                "to": config.to,
                "status": answer.get("status", config.to),
                "version": answer.get("version"),
                "http_status": response.status_code,
            }
        )

    def extra_headers(self, ctx: StepContext) -> dict[str, str]:
        """Further headers of the request (a feature's subclass names who decided)."""
        return {}


def _json(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
