"""The ``require_approval`` step kind.

Options::

    {"kind": "require_approval",
     "approvers": ["role:approver", "user:carol"],   # or "stages": [...] (sequential)
     "mode": "all" | "any" | "quorum", "quorum": 2,
     "stages": [{"approvers": [...], "mode": "all"}, {"approvers": [...], "mode": "any"}],
     "title": "Approve {{ entity.title }}",
     "due_in": "2d",                                  # per stage; s, m, h or d
     "escalate_to": ["role:admin"],                   # told when a stage is overdue
     "allow_self_approval": false,
     "on_approve": [ ...steps... ], "on_reject": [ ...steps... ]}

First run: opens the request and its first stage, and returns ``waiting`` (the
execution moves to ``waiting_approval`` and frees its worker). The decision that
settles the request resumes the execution; the second run finds the outcome and
returns the on-approve or on-reject steps as the branch the engine runs next.
``notify`` steps in those lists become ``approval_notify`` steps, whose templates can
also read ``approval`` (status, decided_by, decisions, comments).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from shared.events import DECIDED_BY_HEADER
from shared.lifecycles import LIFECYCLES, lifecycle_of
from workflow_service.approvals import service
from workflow_service.approvals.models import ApprovalRequest, ApprovalStatus
from workflow_service.models import StepRun, StepStatus
from workflow_service.notifications import delivery
from workflow_service.steps import (
    Step,
    StepConfig,
    StepContext,
    StepFailed,
    StepOutcome,
    Steps,
    Template,
)
from workflow_service.steps.base import TEMPLATE_NAMES
from workflow_service.steps.change_status import ChangeStatus, ChangeStatusConfig
from workflow_service.steps.notify import Notify, NotifyConfig
from workflow_service.steps.recipients import (
    INITIATOR,
    NAMES_PEOPLE,
    OWNER,
    check_single_recipient,
    entity_owner,
    parse_recipient,
)
from workflow_service.steps.registry import step_errors
from workflow_service.templating import TemplateRenderError, renderer

DEFAULT_TITLE = "Approve {{ entity.type }} {{ entity.title | default(entity.id) }}"
#: Matched against the stripped text of at most :data:`MAX_DURATION_CHARS` characters;
#: no two quantifiers can match the same characters, so matching is linear.
_DURATION = re.compile(r"([0-9]{1,9})[ \t]*([smhd]?)")
MAX_DURATION_CHARS = 32
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _recipient(value: str) -> str:
    # Approvers and escalations are stored with the request and named later, from its
    # owner and initiator: not from the event's policy owners.
    return check_single_recipient(value)


def _duration(value: Any) -> Any:
    """``90``, ``"90s"``, ``"30m"``, ``"4h"``, ``"2d"`` -> seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= MAX_DURATION_CHARS:
        match = _DURATION.fullmatch(value.strip())
        if match:
            return int(match.group(1)) * _UNIT_S[match.group(2)]
    raise ValueError("must be seconds or a duration like '90s', '30m', '4h' or '2d'")


Recipient = Annotated[str, AfterValidator(_recipient), NAMES_PEOPLE]
Duration = Annotated[int, BeforeValidator(_duration), Field(ge=1, le=366 * 86400)]
Mode = Literal["all", "any", "quorum"]


def _check_quorum(mode: str, quorum: int | None) -> None:
    if mode == "quorum" and quorum is None:
        raise ValueError("mode 'quorum' needs 'quorum': how many approvals decide")
    if mode != "quorum" and quorum is not None:
        raise ValueError("'quorum' is only used with mode 'quorum'")


def most_approvers(approvers: list[str] | None) -> int | None:
    """The most people ``approvers`` can ever name: one per named user, ``owner`` and
    ``initiator``; None (no bound) once a role is named, since people may be given a
    role after the workflow is saved."""
    people: set[str] = set()
    for raw in approvers or ():
        spec = parse_recipient(raw)
        if spec.kind == "role":
            return None
        people.add(str(spec))
    return len(people)


def _quorum_within(quorum: int | None, info) -> int | None:
    """Field validator of ``quorum`` (declared after ``approvers``, so it sees them)."""
    most = most_approvers(info.data.get("approvers"))
    if quorum is not None and most is not None and quorum > most:
        raise ValueError(
            f"a quorum of {quorum} needs at least {quorum} approvers; the stage names "
            f"{most} (name more people, or a role)"
        )
    return quorum


class StageConfig(StepConfig):
    approvers: list[Recipient] = Field(min_length=1, max_length=50)
    mode: Mode = "any"
    quorum: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _quorum(self):
        _check_quorum(self.mode, self.quorum)
        return self

    _quorum_within = field_validator("quorum")(_quorum_within)


def _in_app_and_email() -> list[Literal["in_app", "email"]]:
    return ["in_app", "email"]


class RequireApprovalConfig(StepConfig):
    approvers: list[Recipient] | None = Field(default=None, min_length=1, max_length=50)
    mode: Mode = "any"
    quorum: int | None = Field(default=None, ge=1, le=100)
    stages: list[StageConfig] | None = Field(default=None, min_length=1, max_length=10)
    title: Template = Field(default=DEFAULT_TITLE, min_length=1, max_length=300)
    due_in: Duration | None = None
    escalate_to: list[Recipient] = Field(default_factory=list, max_length=50)
    allow_self_approval: bool = False
    #: How approvers are told a stage awaits them (e-mail where the directory has one).
    notify: list[Literal["in_app", "email"]] = Field(
        default_factory=_in_app_and_email, max_length=2
    )
    on_approve: Steps = Field(default_factory=list, max_length=50)
    on_reject: Steps = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _one_plan(self):
        if (self.approvers is None) == (self.stages is None):
            raise ValueError("give either 'approvers' (one stage) or 'stages' (sequential)")
        if self.stages is not None and (self.quorum is not None or self.mode != "any"):
            raise ValueError("with 'stages', set 'mode' and 'quorum' on each stage")
        _check_quorum(self.mode, self.quorum)
        if not self.allow_self_approval and decides_entity(None, self.on_approve, self.on_reject):
            # Its owner and the chain's initiator never decide on the entity: a stage of
            # only them could never be decided, which would show at every run.
            for number, stage in enumerate(self.stage_plan(), start=1):
                if {str(parse_recipient(a)) for a in stage.approvers} <= _BARRED:
                    where = f"stage {number}" if self.stages is not None else "approvers"
                    raise ValueError(
                        f"{where} names only {' and '.join(sorted(_BARRED))}, who may not "
                        "decide on the entity this approval moves: name other people or a role"
                    )
        return self

    _quorum_within = field_validator("quorum")(_quorum_within)

    @field_validator("on_approve", "on_reject")
    @classmethod
    def _valid_steps(cls, steps: list[dict[str, Any]], info) -> list[dict[str, Any]]:
        # Checked as the kinds they run as (a notify's templates may read approval).
        as_run = [_with_approval(s, "validation") if isinstance(s, dict) else s for s in steps]
        errors = step_errors(as_run, prefix=info.field_name)
        if errors:
            raise ValueError("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        return steps

    def stage_plan(self) -> list[service.Stage]:
        if self.stages is not None:
            return [service.Stage(tuple(s.approvers), s.mode, s.quorum) for s in self.stages]
        return [service.Stage(tuple(self.approvers or ()), self.mode, self.quorum)]


def _version(data: dict[str, Any]) -> int | None:
    version = data.get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


class RequireApproval(Step):
    kind = "require_approval"
    Config = RequireApprovalConfig

    def run(self, ctx: StepContext) -> StepOutcome:
        config: RequireApprovalConfig = self.config  # type: ignore[assignment]
        request = ApprovalRequest.get_or_none(
            (ApprovalRequest.execution == ctx.execution.id)
            & (ApprovalRequest.step_key == ctx.step_key)
        )
        if request is None:
            return self._open(ctx, config)
        if request.status == ApprovalStatus.PENDING:
            stage = request.current_stage + 1
            return StepOutcome.waiting({"approval_id": request.id, "stage": stage})
        if request.status == ApprovalStatus.CANCELLED:
            why = f": {request.closed_reason}" if request.closed_reason else ""
            raise StepFailed(f"approval {request.id} was cancelled{why}")
        approved = request.status == ApprovalStatus.APPROVED
        steps = config.on_approve if approved else config.on_reject
        return StepOutcome.completed(
            {
                "approval_id": request.id,
                "outcome": request.status,
                "decided_by": request.decided_by,
                "decisions": service.decisions_of(request),
            },
            branch=[_with_approval(step, ctx.step_key) for step in steps],
        )

    _title: str | None = None

    def prepare(self, ctx: StepContext) -> None:
        config: RequireApprovalConfig = self.config  # type: ignore[assignment]
        try:
            self._title = renderer.render(config.title, ctx.template_values)
        except TemplateRenderError as exc:
            raise StepFailed(f"title: {exc}") from None

    def _open(self, ctx: StepContext, config: RequireApprovalConfig) -> StepOutcome:
        if self._title is None:
            self.prepare(ctx)
        title = self._title or ""
        version, status = _entity_state(ctx)
        try:
            request, deliveries = service.open_request(
                execution=ctx.execution,
                step_key=ctx.step_key,
                title=title,
                stages=config.stage_plan(),
                owner=entity_owner(ctx.trigger.entity_type, ctx.trigger.data),
                initiator=ctx.trigger.initiator,
                # Events written before the snapshot carried it have no creator.
                creator=_str(ctx.trigger.data.get("created_by")),
                approves_entity=decides_entity(
                    ctx.trigger.entity_type, config.on_approve, config.on_reject
                ),
                entity_version=version,
                entity_status=status,
                allow_self_approval=config.allow_self_approval,
                due_in_s=config.due_in,
                escalate_to=config.escalate_to,
                notify_channels=config.notify,
            )
        except service.NoEligibleApprovers as exc:
            raise StepFailed(str(exc)) from None
        # A message may arrive before the commit; the delivery actor retries then.
        for delivery_id in deliveries:
            ctx.enqueue(delivery.delivery_message(delivery_id, ctx.execution.tenant_id))
        approvers = [d["approver"] for d in service.decisions_of(request)]
        return StepOutcome.waiting({"approval_id": request.id, "stage": 1, "approvers": approvers})


def _entity_state(ctx: StepContext) -> tuple[int | None, str | None]:
    """The entity's version and status this approval is asked for: those an earlier
    ``change_status`` of this execution moved it to, else the trigger event's."""
    moved = (
        StepRun.select(StepRun.output)
        .where(
            (StepRun.execution == ctx.execution.id)
            & StepRun.kind.in_((ChangeStatus.kind, ApprovalChangeStatus.kind))
            & (StepRun.status == StepStatus.COMPLETED)
        )
        .order_by(StepRun.id.desc())
        .first()
    )
    output = (moved.output if moved is not None else None) or {}
    if _version(output) is not None:
        return _version(output), _str(output.get("status"))
    return _version(ctx.trigger.data), _str(ctx.trigger.data.get("status"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


#: Who never decides on their own entity (unless the workflow allows self-approval).
_BARRED = frozenset({OWNER, INITIATOR})


def _decisions(entity_type: str | None) -> Mapping[str, str]:
    """The statuses that record a decision for ``entity_type``; None: any entity type's
    (a step is checked before the workflow's entity type is known to it)."""
    if entity_type is None:
        return {status: how for lc in LIFECYCLES.values() for status, how in lc.decisions.items()}
    lifecycle = lifecycle_of(entity_type)
    return lifecycle.decisions if lifecycle is not None else {}


def decides_entity(
    entity_type: str | None,
    on_approve: Sequence[dict[str, Any]],
    on_reject: Sequence[dict[str, Any]] = (),
) -> bool:
    """True when the approval's branches move the entity to a status that records a
    decision (:attr:`shared.lifecycles.Lifecycle.decisions`: a policy's ``approved``, an
    assessment's ``completed``, evidence's ``accepted`` or ``rejected``): the approval is
    then a decision about the entity itself, which its own people may never make."""
    decisions = _decisions(entity_type)
    return any(
        s.get("kind") in ("change_status", ApprovalChangeStatus.kind) and s.get("to") in decisions
        for s in (*on_approve, *on_reject)
    )


def _with_approval(step: dict[str, Any], approval_step: str) -> dict[str, Any]:
    if step.get("kind") == "notify":
        return {**step, "kind": ApprovalNotify.kind, "approval_step": approval_step}
    if step.get("kind") == "change_status":
        return {**step, "kind": ApprovalChangeStatus.kind, "approval_step": approval_step}
    return dict(step)


class ApprovalChangeStatusConfig(ChangeStatusConfig):
    #: Key of the require_approval step whose deciders the move is made for.
    approval_step: str = Field(min_length=1, max_length=64)


class ApprovalChangeStatus(ChangeStatus):
    """``change_status`` inside on_approve / on_reject: the api is told who decided
    (``X-Decided-By``: who approved, or for a move to a status that records a rejection,
    who rejected), so it can refuse a decision move that they may not make."""

    kind = "approval_change_status"
    Config: ClassVar[type[ChangeStatusConfig]] = ApprovalChangeStatusConfig

    def extra_headers(self, ctx: StepContext) -> dict[str, str]:
        config: ApprovalChangeStatusConfig = self.config  # type: ignore[assignment]
        request = ApprovalRequest.get_or_none(
            (ApprovalRequest.execution == ctx.execution.id)
            & (ApprovalRequest.step_key == config.approval_step)
        )
        if request is None:
            return {}
        if request.status == ApprovalStatus.APPROVED:
            outcome = ApprovalStatus.APPROVED
        elif (
            request.status == ApprovalStatus.REJECTED
            and _decisions(ctx.trigger.entity_type).get(config.to) == "reject"
        ):
            # A move that records the rejection itself (evidence's ``rejected``).
            outcome = ApprovalStatus.REJECTED
        else:
            return {}
        # The one whose decision settled it first: the api records the move as theirs.
        deciders = [request.decided_by] if request.decided_by else []
        deciders += [d["approver"] for d in service.decisions_of(request) if d["status"] == outcome]
        return {DECIDED_BY_HEADER: ",".join(dict.fromkeys(deciders))} if deciders else {}


class ApprovalNotifyConfig(NotifyConfig):
    #: Key of the require_approval step whose outcome the templates may read.
    approval_step: str = Field(min_length=1, max_length=64)


@dataclass
class _ApprovalContext(StepContext):
    approval: dict[str, Any] | None = None

    @property
    def template_values(self) -> dict[str, Any]:
        return {**super().template_values, "approval": self.approval or {}}


class ApprovalNotify(Notify):
    """``notify`` inside on_approve / on_reject: templates also see ``approval``."""

    kind = "approval_notify"
    Config: ClassVar[type[NotifyConfig]] = ApprovalNotifyConfig
    template_names = (*TEMPLATE_NAMES, "approval")

    def prepare(self, ctx: StepContext) -> None:
        super().prepare(self._with_approval(ctx))

    def run(self, ctx: StepContext) -> StepOutcome:
        return super().run(self._with_approval(ctx))

    def _with_approval(self, ctx: StepContext) -> StepContext:
        config: ApprovalNotifyConfig = self.config  # type: ignore[assignment]
        request = ApprovalRequest.get_or_none(
            (ApprovalRequest.execution == ctx.execution.id)
            & (ApprovalRequest.step_key == config.approval_step)
        )
        values: dict[str, Any] = {}
        if request is not None:
            values = {
                "id": request.id,
                "status": request.status,
                "title": request.title,
                "decided_by": request.decided_by,
                "decisions": service.decisions_of(request),
                "comments": service.comments_of(request),
            }
        fields = {name: getattr(ctx, name) for name in ctx.__dataclass_fields__}
        return _ApprovalContext(**fields, approval=values)
