"""The step interface: what a workflow step is and what it gets to work with.

A step kind is a class with a ``kind`` name, declared in its feature's ``FEATURE``
(``Feature(name=..., steps=(Assign,))``, see :mod:`workflow_service.kernel.feature`);
installing the features registers it under that name::

    from workflow_service.steps import Step, StepContext, StepOutcome

    class Assign(Step):
        kind = "assign"

        class Config(StepConfig):          # the step's options; unknown fields are refused
            assignee: str

        transactional = True               # see below

        def run(self, ctx: StepContext) -> StepOutcome:
            ...
            return StepOutcome.completed({"assignee": ...})

A workflow definition lists steps as flat objects, ``{"kind": "assign", "name":
"optional label", **options}``; the options are validated against ``Config`` when the
workflow is saved (a 422 naming ``steps.<i>.<field>``) and again before a run.

**Outcomes.** ``run`` returns :class:`StepOutcome`:

* ``StepOutcome.completed(output, branch=[...])``: the step is done; ``output`` (JSON)
  is kept in the step log. ``branch`` is an optional list of step definitions that run
  next, before the following top-level step (keys ``"<key>.0"``, ``"<key>.1"``...); a
  decision step uses it to run its on-approve or on-reject steps.
* ``StepOutcome.waiting(output)``: the execution moves to ``waiting_approval`` and the
  worker is released. Whoever decides calls ``Engine.resume(execution_id, tag)``, which moves
  it back to ``pending`` (a conditional UPDATE, so exactly once) and sends a run
  message; the engine then calls ``run`` of the same step again, with
  ``ctx.previous`` holding its waiting step run, and the step returns ``completed``.

**Failures.** Raise :class:`StepFailed` for an error no retry can fix (the execution
fails at once and the message is dead-lettered). Any other exception is retried with
the queue's backoff; the next attempt resumes at this step.

**Before the transaction.** ``prepare(ctx)`` runs first, outside any transaction:
render templates there (``ctx.render``) and keep the text for ``run``.

**Side effects exactly once.** With ``transactional = True`` (the default) ``run`` is
called inside the database transaction that records the step as completed, so a
database side effect and the completion commit together or not at all; also give the
rows a unique key on ``(execution, ctx.step_key, ...)`` and insert with
``on_conflict_ignore`` so a concurrent duplicate cannot add a second one. Steps with an
external side effect set ``transactional = False`` and make it idempotent: HTTP calls
send ``ctx.idempotency_key`` (an HMAC of execution and step), messages use a message id
derived from execution and step (``ctx.message_id(suffix)``).

**Context.** :class:`StepContext` gives the execution row, the trigger (event
envelope and ``data`` snapshot, causation chain), the database, the settings, an HTTP
client for the api with a service token (``ctx.api``), ``ctx.enqueue(message)`` to send
Dramatiq messages, ``ctx.directory`` to expand roles into users, and ``ctx.render``
for sandboxed templates.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

import dramatiq
import peewee
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

if TYPE_CHECKING:
    from shared.events import Event
    from workflow_service.apiclient import ApiClient
    from workflow_service.models import Execution, StepRun
    from workflow_service.settings import WorkflowSettings


#: Longest string any step option may hold (templates included); options set their own
#: lower limits where they can.
MAX_OPTION_CHARS = 10_000
#: Most people one step may name, and the most addresses they may expand to.
MAX_RECIPIENTS = 100


class StepConfig(BaseModel):
    """Base of step option models: unknown options are an error, and no string option
    is longer than :data:`MAX_OPTION_CHARS`."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_OPTION_CHARS)


#: The values every step's templates are rendered with (see
#: :attr:`StepContext.template_values`); a step kind that gives more lists them in its
#: ``template_names``.
TEMPLATE_NAMES = ("entity", "event", "execution")


def check_template(value: str, info: ValidationInfo) -> str:
    """Pydantic validator of a template option: its syntax and limits, and, when the
    step's kind is known (``context["template_names"]``, set by the registry), the
    names, attributes and calls the sandbox would refuse at every render."""
    from workflow_service import templating

    names = (info.context or {}).get("template_names")
    try:
        if names is None:
            templating.check(value)
        else:
            templating.check_names(value, names)
    except templating.TemplateError as exc:
        raise ValueError(str(exc)) from None
    return value


#: A template option of a step.
Template = Annotated[str, AfterValidator(check_template)]


class _NestedSteps:
    """Marker in a type's ``Annotated`` metadata: a list of step definitions."""

    def __repr__(self) -> str:
        return "STEPS"


#: Marks an option holding step definitions run by the step (``require_approval``'s
#: ``on_approve``), so that checks reading steps by their option types walk into them.
STEPS = _NestedSteps()
#: An option holding nested step definitions (each validated by the step that runs them).
Steps = Annotated[list[dict[str, Any]], STEPS]


class StepFailed(Exception):
    """A step error that retrying cannot fix (bad configuration, a refused transition)."""


@dataclass(frozen=True)
class StepOutcome:
    state: Literal["completed", "waiting"]
    output: dict[str, Any] = field(default_factory=dict)
    branch: tuple[dict[str, Any], ...] = ()

    @classmethod
    def completed(
        cls, output: Mapping[str, Any] | None = None, branch: Sequence[Mapping[str, Any]] = ()
    ) -> StepOutcome:
        return cls("completed", dict(output or {}), tuple(dict(s) for s in branch))

    @classmethod
    def waiting(cls, output: Mapping[str, Any] | None = None) -> StepOutcome:
        return cls("waiting", dict(output or {}))


@dataclass(frozen=True)
class Trigger:
    """What started an execution: an event's envelope and data, or a manual run.

    The envelope is :class:`shared.events.Event`'s (its fields but ``schema_version``;
    a test holds the two to the same names): an event becomes a trigger through
    :meth:`from_event`. A trigger is more than an event, though: manual and scheduled
    runs are triggers no event carries (``policy.manual``, ``policy.scheduled``, which
    the event schema refuses), and the initiator is always set (the event's actor when
    it names none). Its payload is what an execution stores and a run reads back.
    """

    event_id: str
    event_type: str
    entity_type: str
    entity_id: str
    tenant_id: str
    actor: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    causation: tuple[str, ...] = ()
    occurred_at: str | None = None
    #: The person whose change started the chain: the event's initiator if it names
    #: one (a workflow acted for them), else its actor.
    initiator: str | None = None

    @classmethod
    def from_event(cls, event: Event) -> Trigger:
        """The trigger of a validated event."""
        return cls(
            event_id=event.event_id,
            event_type=event.event_type,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            tenant_id=event.tenant_id,
            actor=event.actor,
            data=dict(event.data),
            causation=tuple(event.causation),
            # The event schema's own JSON form of the time, as its payload carries it.
            occurred_at=event.model_dump(mode="json", include={"occurred_at"})["occurred_at"],
            initiator=event.initiator or event.actor,
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Trigger:
        return cls(
            event_id=str(payload["event_id"]),
            event_type=str(payload["event_type"]),
            entity_type=str(payload["entity_type"]),
            entity_id=str(payload["entity_id"]),
            tenant_id=str(payload["tenant_id"]),
            actor=payload.get("actor"),
            data=dict(payload.get("data") or {}),
            causation=tuple(payload.get("causation") or ()),
            occurred_at=str(payload["occurred_at"]) if payload.get("occurred_at") else None,
            initiator=payload.get("initiator") or payload.get("actor"),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "tenant_id": self.tenant_id,
            "actor": self.actor,
            "data": self.data,
            "causation": list(self.causation),
            "occurred_at": self.occurred_at,
            "initiator": self.initiator,
        }

    @property
    def envelope(self) -> dict[str, Any]:
        payload = self.to_payload()
        payload.pop("data")
        return payload

    @property
    def depth(self) -> int:
        return len(self.causation)

    def caused_chain(self) -> list[str]:
        """The causation chain an entity change made by this execution passes on."""
        return [*self.causation, self.event_id]


class Directory(Protocol):
    """Expands a role into user ids, and knows who exists; ``None`` when the tenant
    has no user directory."""

    def users_with_role(self, tenant_id: str, role: str) -> list[str] | None: ...

    def unknown_users(self, tenant_id: str, user_ids: Sequence[str]) -> set[str] | None: ...


class NoDirectory:
    """Without a user directory roles stay roles (role-addressed inbox rows)."""

    def users_with_role(self, tenant_id: str, role: str) -> list[str] | None:
        return None

    def unknown_users(self, tenant_id: str, user_ids: Sequence[str]) -> set[str] | None:
        return None


#: Keeps idempotency keys apart from anything else the service-token secret signs.
IDEMPOTENCY_KEY_LABEL = "governance.idempotency-key.v1"
#: Namespace of message ids derived from execution and step, so a re-send is recognisable.
MESSAGE_ID_NAMESPACE = uuid.UUID("6f1d8a52-3b1e-4c55-9a57-0c6f7b3f2e11")


@dataclass
class StepContext:
    execution: Execution
    trigger: Trigger
    step_key: str
    #: 1-based place among the steps known so far, and their count (for progress).
    step_number: int
    step_count: int
    attempt: int
    settings: WorkflowSettings
    db: peewee.Database | peewee.DatabaseProxy
    api: ApiClient
    enqueue: Callable[[dramatiq.Message], Any]
    directory: Directory
    workflow_name: str = ""
    #: The latest earlier run of this step (e.g. the waiting run a decision resumes).
    previous: StepRun | None = None

    @property
    def step_identity(self) -> str:
        """This step of this execution: the same for every attempt."""
        return f"{self.execution.id}:{self.step_key}"

    @property
    def idempotency_key(self) -> str:
        """The ``Idempotency-Key`` of this step's calls to the api: the same for every
        attempt, and an HMAC of the service-token secret, so nobody who knows (or
        guesses) an execution id can use up or replay the key the step will send."""
        message = f"{IDEMPOTENCY_KEY_LABEL}:{self.step_identity}".encode()
        key = self.settings.service_token_secret.encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def message_id(self, suffix: str = "") -> str:
        return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{self.step_identity}:{suffix}"))

    @property
    def template_values(self) -> dict[str, Any]:
        """What templates may read (:data:`TEMPLATE_NAMES`): the entity snapshot, the
        event and the execution."""
        return {
            "entity": {
                **self.trigger.data,
                "id": self.trigger.entity_id,
                "type": self.trigger.entity_type,
            },
            "event": self.trigger.envelope,
            "execution": {"id": self.execution.id, "workflow": self.workflow_name},
        }

    def render(self, template: str) -> str:
        """Render a sandboxed template; a template error fails the step for good (the
        same template fails the same way on every retry). Steps render in
        :meth:`Step.prepare`, before the step's transaction opens."""
        from workflow_service.templating import TemplateError, render

        try:
            return render(template, self.template_values)
        except TemplateError as exc:
            raise StepFailed(str(exc)) from None


class Step:
    """Base of step kinds; see the module docstring."""

    kind: ClassVar[str]
    Config: ClassVar[type[StepConfig]] = StepConfig
    #: Run inside the transaction that records completion (database side effects).
    transactional: ClassVar[bool] = True
    #: The names this kind's templates are rendered with (checked when saved).
    template_names: ClassVar[tuple[str, ...]] = TEMPLATE_NAMES

    def __init__(self, config: StepConfig):
        self.config = config

    def prepare(self, ctx: StepContext) -> None:
        """Work done before the step's transaction opens, such as rendering templates:
        a slow render must never hold the database's write lock."""

    def run(self, ctx: StepContext) -> StepOutcome:
        raise NotImplementedError
