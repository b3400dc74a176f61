"""``assign``: make one person the entity's assignee through the api, and tell them.

Options: ``assignee`` (one person in the recipient grammar of :mod:`.recipients`:
``user:<id>`` or a bare id, ``owner`` or ``initiator``; never a role), ``comment`` (a
template, recorded with the assignment), ``purpose`` (a label, the comment's default),
``notify`` (how the assignee is told: ``in_app`` and ``email`` by default; ``[]`` for
nobody), ``subject`` and ``body`` (templates of that message).

The step calls ``POST /<collection>/{id}/assignment`` with ``{"assignee", "comment"}``
(the collection from :mod:`shared.lifecycles`): the api sets the policy's owner, the
assessment's assessor or the evidence's collector, records an ``<type>.assigned``
version and publishes the event. Like ``change_status`` it sends the execution's
causation chain, the initiator, and an ``Idempotency-Key`` derived from execution and
step, so a retried step (its first answer lost) replays the first assignment instead of
making a second one. Connection errors, timeouts, 408, 429 and 5xx are retried; other
answers fail the execution with the api's words.

The assignment lives in the api (the entity and its versions); the step log keeps what
the api answered. The assignee's in-app message and e-mail are written after the api
answered, in one transaction, with ids derived from execution and step, so a retry
never tells them twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal
from urllib.parse import quote

import dramatiq
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
from workflow_service.steps.notify import CHANNELS
from workflow_service.steps.recipients import Address, Person, nobody_as, person_of

RETRYABLE_STATUS = frozenset({408, 429})
DEFAULT_SUBJECT = "You were assigned {{ entity.type }} {{ entity.title | default(entity.id) }}"
DEFAULT_BODY = (
    'The workflow "{{ execution.workflow }}" assigned you the {{ entity.type }} '
    '"{{ entity.title | default(entity.id) }}".'
)


class ApiUnavailable(Exception):
    """The api could not be asked, or answered with a status worth retrying."""


def _in_app_and_email() -> list[Literal["in_app", "email"]]:
    return ["in_app", "email"]


class AssignConfig(StepConfig):
    assignee: Person
    purpose: str = Field(default="owner", min_length=1, max_length=64)
    comment: Template | None = Field(default=None, max_length=2000)
    notify: list[Literal["in_app", "email"]] = Field(
        default_factory=_in_app_and_email, max_length=2
    )
    subject: Template = Field(default=DEFAULT_SUBJECT, min_length=1, max_length=300)
    body: Template = Field(default=DEFAULT_BODY, max_length=4000)


class Assign(Step):
    kind = "assign"
    Config = AssignConfig
    transactional = False  # an HTTP side effect, made idempotent by the key

    _rendered: tuple[str, str, str] | None = None

    def prepare(self, ctx: StepContext) -> None:
        config: AssignConfig = self.config  # type: ignore[assignment]
        comment = ctx.render(config.comment) if config.comment else f"Assigned as {config.purpose}"
        self._rendered = (comment, ctx.render(config.subject), ctx.render(config.body))

    def run(self, ctx: StepContext) -> StepOutcome:
        config: AssignConfig = self.config  # type: ignore[assignment]
        if self._rendered is None:
            self.prepare(ctx)
        comment, subject, body = self._rendered  # type: ignore[misc]
        assignee = person_of(config.assignee, ctx)
        if not assignee:
            raise StepFailed(f"assignee {nobody_as(config.assignee)}")
        answer = self._assign(ctx, assignee, comment[:2000])
        told = self._tell(ctx, config, assignee, subject, body)
        return StepOutcome.completed(
            {
                "assignee": assignee,
                "purpose": config.purpose,
                "version": answer.get("version"),
                "told": told,
            }
        )

    def _assign(self, ctx: StepContext, assignee: str, comment: str) -> dict[str, Any]:
        trigger = ctx.trigger
        lifecycle = lifecycle_of(trigger.entity_type)
        if lifecycle is None:
            raise StepFailed(f"the api has no {trigger.entity_type} entities to assign")
        path = f"/{lifecycle.collection}/{quote(trigger.entity_id, safe='')}/assignment"
        try:
            response = ctx.api.request(
                "POST",
                path,
                ctx.execution.tenant_id,
                json={"assignee": assignee, "comment": comment},
                headers={
                    "Idempotency-Key": ctx.idempotency_key,
                    CAUSATION_HEADER: ",".join(trigger.caused_chain()),
                    **({INITIATOR_HEADER: trigger.initiator} if trigger.initiator else {}),
                },
            )
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"POST {path}: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
            raise ApiUnavailable(f"api answered {response.status_code} on POST {path}")
        answer = _json(response)
        if response.status_code >= 400:
            described = answer.get("description") or answer.get("title") or response.text[:300]
            raise StepFailed(
                f"api refused to assign {trigger.entity_type} {trigger.entity_id} to "
                f"{assignee!r} ({response.status_code}): {described}"
            )
        return answer

    def _tell(
        self, ctx: StepContext, config: AssignConfig, assignee: str, subject: str, body: str
    ) -> dict[str, Any]:
        """The assignee's message on each of ``config.notify``'s channels that this
        deployment has (``email`` comes with the notifications feature), in one
        transaction; messages are sent once it committed."""
        held: list[dramatiq.Message] = []
        told_ctx = dataclasses.replace(ctx, enqueue=held.append)
        addresses = [Address(user=assignee)]
        told: dict[str, Any] = {}
        with ctx.db.atomic():
            for channel in config.notify:
                handler = CHANNELS.get(channel)
                if handler is not None:
                    # in_app and email read no notify config; an assignment has none.
                    told[channel] = handler(told_ctx, addresses, subject, body, None)  # type: ignore[arg-type]
        for message in held:
            ctx.enqueue(message)
        return told


def _json(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
