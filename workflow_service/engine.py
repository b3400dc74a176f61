"""Dispatch and run: the trigger path's steps 3 to 5, independent of Dramatiq actors.

* :meth:`Engine.dispatch` finds the active workflows an event matches, creates one
  execution per (workflow, event) - the execution id is derived from both, and the pair
  is a unique key, so a redelivered event creates nothing new - and sends one run
  message per pending execution, with a message id derived from the execution id (a
  re-dispatch re-sends the same job).
* :meth:`Engine.run` claims an execution with a conditional UPDATE, runs its steps in
  order from the first one without a completed step run, and records each attempt of
  each step in the step log. See :mod:`workflow_service.steps.base` for how steps keep
  side effects to one.

The actors in :mod:`workflow_service.actors` are thin wrappers around this class.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import peewee
import redis

from shared.db import utcnow
from shared.events import Event
from shared.jobstatus import end_waiting, report_progress, report_subject, report_waiting
from shared.queues import ENTITY_QUEUES
from shared.sql import CompiledInsert, CompiledQuery
from workflow_service import ending
from workflow_service.apiclient import ApiClient
from workflow_service.cache import ActiveWorkflowCache
from workflow_service.definitions import trigger_for_event
from workflow_service.heartbeat import ClaimHeartbeat
from workflow_service.kernel import hooks
from workflow_service.models import (
    Execution,
    ExecutionStatus,
    StepRun,
    StepStatus,
    Workflow,
    WorkflowVersion,
)
from workflow_service.steps import (
    Directory,
    NoDirectory,
    StepContext,
    StepFailed,
    StepOutcome,
    Trigger,
    build_step_or_fail,
)

log = logging.getLogger(__name__)

#: What the broker raises when Redis cannot be reached (down, or not answering).
BROKER_UNAVAILABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
ID_NAMESPACE = uuid.UUID("1b5f3c0e-7a4d-4f0e-8d8e-5a0c2f9b6d31")
ERROR_LIMIT = 4000


def run_actor_name(entity_type: str) -> str:
    """``run_execution`` on governance.policy, ``run_execution_<entity>`` elsewhere."""
    return "run_execution" if entity_type == "policy" else f"run_execution_{entity_type}"


def exhausted_actor_name(entity_type: str) -> str:
    """The actor Dramatiq's Retries calls (``on_retry_exhausted``) for a run actor."""
    return "execution_failed" if entity_type == "policy" else f"execution_failed_{entity_type}"


def execution_id_for(workflow_id: str, event_id: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"execution:{workflow_id}:{event_id}"))


def run_job_id(execution_id: str, tag: str = "") -> str:
    """Message id of an execution's run message; ``tag`` distinguishes resumptions."""
    return str(uuid.uuid5(ID_NAMESPACE, f"run:{execution_id}:{tag}"))


def describe(exc: BaseException) -> str:
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:ERROR_LIMIT]


class ClaimLost(Exception):
    """Another worker claimed the execution (this one was silent past the claim timeout)."""


class ExecutionFailed(Exception):
    """The execution failed for good (recorded); the message must not be retried."""


class UnknownExecution(Exception):
    """A run message for an execution that does not exist; retrying cannot help."""


class _AfterCommit:
    """Messages a step sends from inside its transaction, held until it commits.

    If sending fails after the commit, the step's rows stand and the scheduler's
    sweeps send them later (pending deliveries, stuck executions), so nothing is
    lost; a step rolled back sends nothing.
    """

    def __init__(self, broker: Any):
        self.broker = broker
        self.messages: list[dramatiq.Message] = []

    def add(self, message: dramatiq.Message) -> dramatiq.Message:
        self.messages.append(message)
        return message

    def send(self) -> None:
        messages, self.messages = self.messages, []
        for message in messages:
            try:
                self.broker.enqueue(message)
            except Exception as exc:  # noqa: BLE001 - the sweeps send what is left
                log.warning("message %s not sent after commit: %s", message.message_id, exc)


@dataclass
class Engine:
    settings: Any  # WorkflowSettings
    db: peewee.Database | peewee.DatabaseProxy
    broker: Any  # anything with enqueue(message)
    api: ApiClient
    cache: ActiveWorkflowCache
    directory: Directory = field(default_factory=NoDirectory)
    clock: Callable[[], datetime] = utcnow
    #: Called with every event before its workflows are matched (features close what
    #: an entity's deletion or change ends); an exception retries the dispatch.
    event_hooks: list[Callable[[Event], Any]] = field(default_factory=list)
    _definitions: dict[tuple[str, int], dict] = field(default_factory=dict, repr=False)
    _steps: dict[tuple[str, int, str], tuple[dict, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._heartbeat = ClaimHeartbeat(
            self.db,
            lambda execution_id, attempt: _RENEW_CLAIM.execute(
                self.db, execution_id, attempt, utcnow()
            ),
            lambda: self.settings.claim_timeout_s / 3,
        )

    # ------------------------------------------------------------------------ dispatch

    def dispatch(self, event: Event, parent_job_id: str | None = None) -> list[Execution]:
        for hook in self.event_hooks:
            hook(event)
        trigger_name = trigger_for_event(event.event_type)
        if trigger_name is None:
            hooks.event_received(event)
            return []
        trigger = Trigger.from_event(event)
        matching = self.cache.match(
            event.tenant_id, event.entity_type, trigger_name, trigger.data, trigger.envelope
        )
        with self.db.atomic():  # the event's audit entry and its executions: one commit
            hooks.event_received(event)
            executions = [self.create_execution(w.id, w.version, trigger) for w in matching]
        for execution in executions:
            if execution.status == ExecutionStatus.PENDING:
                self.send_run(execution, parent_job_id)
        return executions

    def create_execution(self, workflow_id: str, version: int, trigger: Trigger) -> Execution:
        """The execution of ``workflow_id`` for ``trigger``: created once, then found."""
        execution_id = execution_id_for(workflow_id, trigger.event_id)
        now = self.clock()
        status, error, finished = ExecutionStatus.PENDING, None, None
        limit = self.settings.max_causation_depth
        if trigger.depth > limit:
            status, finished = ExecutionStatus.FAILED, now
            error = (
                f"causation chain too deep: event {trigger.event_id} is {trigger.depth} "
                f"changes deep ({' -> '.join(trigger.causation)}), the limit is {limit} "
                "(MAX_CAUSATION_DEPTH); stopped to break a trigger loop"
            )
        values = {
            "id": execution_id,
            "tenant_id": trigger.tenant_id,
            "workflow": workflow_id,
            "workflow_version": version,
            "event_id": trigger.event_id,
            "event": trigger.to_payload(),
            "entity_type": trigger.entity_type,
            "entity_id": trigger.entity_id,
            "status": status,
            "error": error,
            "attempts": 0,
            "job_id": run_job_id(execution_id),
            "created_at": now,
            "updated_at": now,
            "finished_at": finished,
        }
        inserted = _INSERT_EXECUTION.execute(self.db, values)
        if inserted:
            return Execution(**values)
        return Execution.get_by_id(execution_id)  # a redelivery: the first one made it

    def run_message(self, execution: Execution, parent_job_id: str | None = None):
        options: dict[str, Any] = {"tenant_id": execution.tenant_id}
        if parent_job_id:
            options["parent_job_id"] = parent_job_id
        return dramatiq.Message(
            queue_name=ENTITY_QUEUES[execution.entity_type],
            actor_name=run_actor_name(execution.entity_type),
            args=(execution.id,),
            kwargs={},
            options=options,
            message_id=execution.job_id,
        )

    def send_run(self, execution: Execution, parent_job_id: str | None = None) -> str:
        self.broker.enqueue(self.run_message(execution, parent_job_id))
        return execution.job_id

    def manual_run(
        self, workflow: Workflow, entity_id: str, data: dict, actor: str | None
    ) -> Execution:
        """Create a pending execution for one entity and send its run message.

        The execution is committed before the message is sent. If the broker cannot
        take the message (Redis down), the run still stands: the execution stays
        pending, and the scheduler's sweep (:meth:`sweep`, every
        ``EXECUTION_SWEEP_INTERVAL_SECONDS``) re-sends the run message, with the same
        job id, once it has been pending ``EXECUTION_SWEEP_AFTER_SECONDS``. So this logs
        a warning instead of failing a request whose work is recorded; the job's status
        record appears when the message is sent.
        """
        trigger = Trigger(
            event_id=str(uuid.uuid4()),
            event_type=f"{workflow.entity_type}.manual",
            entity_type=workflow.entity_type,
            entity_id=entity_id,
            tenant_id=workflow.tenant_id,
            actor=actor,
            data=data,
            occurred_at=self.clock().isoformat() + "Z",
        )
        with self.db.atomic():  # the execution and who asked for it: one commit
            execution = self.create_execution(workflow.id, workflow.version, trigger)
            hooks.execution_recorded(execution, "requested", {"trigger": "manual"}, actor=actor)
        self._send_or_leave_to_sweep(execution)
        return execution

    def scheduled_run(self, workflow: Workflow, entity_id: str, fire_time: datetime) -> Execution:
        """One execution per workflow and fire time, however many schedulers fire it.

        ``fire_time`` must be the schedule's time, not the clock's: the event id, and so
        the execution id, is derived from it, which is what makes every scheduler
        process that fires the same time find the same execution.

        A scheduled run is for ``trigger_config.entity_id`` and carries no snapshot of
        that entity: its data is empty. So a scheduled workflow may have no conditions
        and no ``owner`` or ``initiator`` people (validation refuses them), and a
        template reading ``entity.<field>`` fails (only ``entity.id`` and
        ``entity.type`` are set).

        If the broker cannot take the run message the execution stands and stays
        pending; the sweep sends it (as with :meth:`manual_run`).
        """
        trigger = Trigger(
            event_id=str(uuid.uuid5(ID_NAMESPACE, f"{workflow.id}:{fire_time.isoformat()}")),
            event_type=f"{workflow.entity_type}.scheduled",
            entity_type=workflow.entity_type,
            entity_id=entity_id,
            tenant_id=workflow.tenant_id,
            occurred_at=fire_time.isoformat(),
        )
        execution = self.create_execution(workflow.id, workflow.version, trigger)
        if execution.status == ExecutionStatus.PENDING:
            # Another scheduler may have sent it already: the same job id, and a run
            # claims the execution, so a second message does nothing.
            self._send_or_leave_to_sweep(execution)
        return execution

    def _send_or_leave_to_sweep(self, execution: Execution) -> None:
        """Send the run message of a committed execution; if Redis cannot take it, the
        execution stays pending and the sweep sends it later."""
        try:
            self.send_run(execution)
        except BROKER_UNAVAILABLE as exc:
            log.warning(
                "execution %s: run message not sent (%s: %s); the sweep will send it",
                execution.id,
                type(exc).__name__,
                exc,
            )

    # ----------------------------------------------------------------------------- run

    def claim(self, execution_id: str) -> bool:
        """Take the execution if it is pending, or running under a claim so old that its
        worker must be gone. One conditional UPDATE: two workers cannot both win."""
        now = self.clock()
        stale = now - timedelta(seconds=self.settings.claim_timeout_s)
        claimed = _CLAIM.execute(self.db, execution_id, now, stale)
        return claimed == 1

    def run(self, execution_id: str) -> str:
        """Run or resume an execution; returns its status afterwards."""
        first_run: StepRun | None = None
        # The claim, on the first its audit entry and the first step's run row (the
        # step log shows the attempt from the moment it is claimed): one commit.
        with self.db.atomic():
            now = self.clock()
            stale = now - timedelta(seconds=self.settings.claim_timeout_s)
            execution = _claim_returning(self.db, execution_id, now, stale)
            claimed = execution is not None
            if execution is not None:
                first_run = self._first_step_run(execution)
                if execution.started_at == execution.claimed_at:  # its first claim
                    hooks.execution_recorded(execution, "started", {"attempt": execution.attempts})
        if not claimed:
            status = Execution.select(Execution.status).where(Execution.id == execution_id).scalar()
            if status is None:
                raise UnknownExecution(f"no execution {execution_id}")
            log.info("execution %s not claimable (%s); skipped", execution_id, status)
            return status
        assert execution is not None
        try:
            return self._run_claimed(execution, first_run)
        except ClaimLost:
            log.warning("execution %s was claimed by another worker; this run stops", execution_id)
            return ExecutionStatus.RUNNING
        except StepFailed as exc:
            self.fail(execution_id, describe(exc))
            raise ExecutionFailed(str(exc)) from exc
        except BaseException as exc:
            # Hand it back for the retry (or the sweep) to claim; keep the error for the
            # record the retries-exhausted handler writes.
            (
                Execution.update(
                    status=ExecutionStatus.PENDING, error=describe(exc), updated_at=self.clock()
                )
                .where(_owned(execution))
                .execute()
            )
            raise

    def _first_step_run(self, execution: Execution) -> StepRun | None:
        """On an execution's first claim, its first step's run row, written in the
        claim's transaction; None on a later claim (which looks at earlier runs first),
        or when the step cannot be built (it fails as before, without a row)."""
        definition = self._definitions.get((execution.workflow_id, execution.workflow_version))
        if execution.attempts != 1 or not definition or not definition.get("steps"):
            return None  # (a definition not read yet is read after the claim, as before)
        spec = definition["steps"][0]
        try:
            self._step(execution.workflow_id, execution.workflow_version, "0", spec)
        except Exception:  # noqa: BLE001 - it fails where it always did, in its run
            return None
        run = StepRun(
            execution=execution.id,
            key="0",
            position=0,
            kind=spec["kind"],
            attempt=execution.attempts,
            started_at=execution.claimed_at,
        )
        run.id = _INSERT_STEP_RUN.execute(self.db, run.__data__)
        return run

    def _step(self, workflow_id: str, version: int, key: str, spec: dict) -> Any:
        """The step object for ``spec``. A definition's own steps (not a branch's, whose
        keys say which branch) are validated once per version: versions never change,
        and validation renders templates' syntax (the costliest part of a run)."""
        if "." in key:
            return build_step_or_fail(spec)
        cache_key = (workflow_id, version, key)
        built = self._steps.get(cache_key)
        if built is None or built[0] is not spec:
            built = (spec, build_step_or_fail(spec))
            if len(self._steps) > 5000:
                self._steps.clear()
            self._steps[cache_key] = built
        prototype = built[1]
        # A step object holds what prepare() rendered for one run: a new one per run.
        return type(prototype)(prototype.config)

    def _run_claimed(self, execution: Execution, first_run: StepRun | None = None) -> str:
        definition = self._definition(execution.workflow_id, execution.workflow_version)
        trigger = Trigger.from_payload(execution.event)
        # Names for the job's record (the console shows them beside the ids); batched
        # with the job's own status writes.
        report_subject(
            workflow_id=execution.workflow_id,
            workflow_name=definition.get("name"),
            execution_id=execution.id,
            entity_type=execution.entity_type,
            entity_id=execution.entity_id,
            entity_title=trigger.data.get("title"),
        )
        # The first claim cannot find earlier step runs; later ones (retries,
        # redeliveries, resumptions) resume after the completed steps.
        runs = []
        if execution.attempts > 1:
            # A step still "running" from an earlier attempt lost its worker (killed, or
            # stopped past the claim timeout); say so in the step log.
            (
                StepRun.update(
                    status=StepStatus.FAILED,
                    error="interrupted: the worker running this attempt stopped",
                    finished_at=self.clock(),
                )
                .where(
                    (StepRun.execution == execution.id)
                    & (StepRun.status == StepStatus.RUNNING)
                    & (StepRun.attempt < execution.attempts)
                )
                .execute()
            )
            runs = list(
                StepRun.select().where(StepRun.execution == execution.id).order_by(StepRun.id)
            )
        completed = {r.key: r for r in runs if r.status == StepStatus.COMPLETED}
        latest = {r.key: r for r in runs}
        plan: list[tuple[str, dict]] = [(str(i), s) for i, s in enumerate(definition["steps"])]
        index = 0
        while index < len(plan):
            key, spec = plan[index]
            done = completed.get(key)
            if done is not None:
                branch = list(done.branch or ())
            else:
                # The claim itself proved the execution was not cancelled.
                if index > 0 and self._cancelled(execution.id):
                    return ExecutionStatus.CANCELLED
                report_progress(int(100 * index / len(plan)), f"step {index + 1} of {len(plan)}")
                outcome, ended = self._run_step(
                    execution,
                    trigger,
                    key,
                    index,
                    len(plan),
                    spec,
                    latest.get(key),
                    definition.get("name", ""),
                    first_run if index == 0 else None,
                    last=index == len(plan) - 1,
                )
                if outcome.state == "waiting":
                    return self._wait(execution, outcome)
                if ended is not None:  # completed in the last step's commit
                    if ended:
                        return ExecutionStatus.COMPLETED
                    return Execution.get_by_id(execution.id).status
                branch = list(outcome.branch)
            plan[index + 1 : index + 1] = [(f"{key}.{j}", s) for j, s in enumerate(branch)]
            index += 1
        with self.db.atomic():
            finished = self._complete(execution)
        if not finished:
            return Execution.get_by_id(execution.id).status
        return ExecutionStatus.COMPLETED

    def _complete(self, execution: Execution) -> int:
        """Mark the execution completed (and audit it) inside the caller's transaction;
        0 when another worker owns it now."""
        finished = _COMPLETE.execute(self.db, execution.id, execution.attempts, self.clock())
        if finished:
            hooks.execution_recorded(execution, "completed")
        return finished

    def _run_step(
        self,
        execution: Execution,
        trigger: Trigger,
        key: str,
        index: int,
        count: int,
        spec: dict,
        previous: StepRun | None,
        workflow_name: str,
        run: StepRun | None = None,
        *,
        last: bool = False,
    ) -> tuple[StepOutcome, int | None]:
        """Run one step; returns its outcome, and whether the execution completed in
        the step's commit (None: not there; 1, or 0 when another worker owns it now)."""
        step = self._step(execution.workflow_id, execution.workflow_version, key, spec)
        now = self.clock()
        if run is None:
            run = StepRun(
                execution=execution.id,
                key=key,
                position=index,
                kind=spec["kind"],
                attempt=execution.attempts,
                started_at=now,
            )
            run.id = _INSERT_STEP_RUN.execute(self.db, run.__data__)
        # A transactional step's messages wait for its commit: a worker must never
        # take a message whose rows may still roll back (or not be visible yet).
        after_commit = _AfterCommit(self.broker) if step.transactional else None
        ctx = StepContext(
            execution=execution,
            trigger=trigger,
            step_key=key,
            step_number=index + 1,
            step_count=count,
            attempt=execution.attempts,
            settings=self.settings,
            db=self.db,
            api=self.api,
            enqueue=after_commit.add if after_commit else self.broker.enqueue,
            directory=self.directory,
            workflow_name=workflow_name,
            previous=previous,
        )
        try:
            with self._heartbeat.held(execution.id, execution.attempts):
                outcome, completed = self._run_in_claim(step, ctx, execution, run, now, last)
            if after_commit:
                after_commit.send()
        except BaseException as exc:
            (
                StepRun.update(
                    status=StepStatus.FAILED, error=describe(exc), finished_at=self.clock()
                )
                .where(StepRun.id == run.id)
                .execute()
            )
            hooks.step_recorded(execution, run, StepStatus.FAILED, error=describe(exc))
            raise
        return outcome, completed

    def _run_in_claim(
        self,
        step: Any,
        ctx: StepContext,
        execution: Execution,
        run: StepRun,
        now: datetime,
        last: bool = False,
    ) -> tuple[StepOutcome, int | None]:
        # Templates render here, never inside the write transaction below.
        step.prepare(ctx)
        completed = None
        if step.transactional:
            with self.db.atomic():
                # In the step's transaction: its database side effect commits only
                # while this worker still owns the execution.
                self._renew_claim(execution, now)
                outcome = step.run(ctx)
                self._record(run, outcome, execution)
                if last and outcome.state != "waiting" and not outcome.branch:
                    # The last step: the execution completes in the same commit.
                    completed = self._complete(execution)
        else:
            self._renew_claim(execution, now)
            outcome = step.run(ctx)
            self._record(run, outcome, execution)
        return outcome, completed

    def _renew_claim(self, execution: Execution, now: datetime) -> None:
        """Steps renew the claim, so only a worker silent for the claim timeout loses its
        execution; one that did lose it stops here instead of repeating a side effect."""
        if execution.claimed_at is not None and (now - execution.claimed_at).total_seconds() < 1:
            return  # claimed a moment ago: nobody can have taken it over yet
        renewed = _RENEW_CLAIM.execute(self.db, execution.id, execution.attempts, now)
        if not renewed:
            raise ClaimLost(execution.id)
        execution.claimed_at = now

    def _definition(self, workflow_id: str, version: int) -> dict:
        """A version's definition; versions never change, so each is read once."""
        key = (workflow_id, version)
        definition = self._definitions.get(key)
        if definition is None:
            row = WorkflowVersion.get_or_none(
                (WorkflowVersion.workflow == workflow_id) & (WorkflowVersion.version == version)
            )
            if row is None:
                raise StepFailed(f"workflow {workflow_id} version {version} is gone")
            definition = row.definition
            if len(self._definitions) > 1000:
                self._definitions.clear()
            self._definitions[key] = definition
        return definition

    def _record(self, run: StepRun, outcome: StepOutcome, execution: Execution) -> None:
        waiting = outcome.state == "waiting"
        status = StepStatus.WAITING if waiting else StepStatus.COMPLETED
        hooks.step_recorded(execution, run, status, output=outcome.output)
        _FINISH_STEP.execute(
            self.db,
            run.id,
            status,
            StepRun.output.db_value(outcome.output),
            StepRun.branch.db_value(list(outcome.branch) or None),
            None if waiting else self.clock(),
        )

    def _cancelled(self, execution_id: str) -> bool:
        status = Execution.select(Execution.status).where(Execution.id == execution_id).scalar()
        return status == ExecutionStatus.CANCELLED

    def _wait(self, execution: Execution, outcome: StepOutcome) -> str:
        parked = (
            Execution.update(status=ExecutionStatus.WAITING_APPROVAL, updated_at=self.clock())
            .where(_owned(execution))
            .execute()
        )
        if parked:
            # The run job's record says whom the execution waits for, so the write's job
            # shows it (tree state ``waiting``) without reading this database.
            output = outcome.output
            approvers = output.get("approvers")
            report_waiting(
                execution_id=execution.id,
                approval_id=output.get("approval_id"),
                approvers=[str(a) for a in approvers] if isinstance(approvers, list) else [],
            )
        return ExecutionStatus.WAITING_APPROVAL

    def _waiting_job(self, execution_id: str) -> tuple[str, str] | None:
        """The run job (id, queue) that parked the execution, if it waits now."""
        row = (
            Execution.select(Execution.job_id, Execution.entity_type)
            .where(
                (Execution.id == execution_id)
                & (Execution.status == ExecutionStatus.WAITING_APPROVAL)
            )
            .tuples()
            .first()
        )
        if row is None or not row[0] or row[1] not in ENTITY_QUEUES:
            return None
        return row[0], ENTITY_QUEUES[row[1]]

    def _end_waiting(self, parked: tuple[str, str] | None, ended_by: str) -> None:
        """Close the waiting marker of the run job that parked an execution."""
        if parked is not None and parked[0] != ended_by:
            end_waiting(self.broker, parked[0], parked[1], ended_by)

    # ------------------------------------------------------------ state changes by others

    def fail(self, execution_id: str, error: str) -> bool:
        """Fail unless already final; its run job is told (see :mod:`.ending`)."""
        return ending.end(
            self.broker, execution_id, ExecutionStatus.FAILED, error, self.clock(), error=error
        )

    def cancel(self, execution_id: str, reason: str = "cancelled on request") -> bool:
        """Cancel unless already final; a running step finishes, the next does not start."""
        return ending.end(
            self.broker, execution_id, ExecutionStatus.CANCELLED, reason, self.clock()
        )

    def resume(self, execution_id: str, tag: str) -> str | None:
        """Move a waiting execution back to pending and send a run message, exactly once.

        ``tag`` (e.g. the decided step's key) makes the resumption's job id distinct and
        deterministic. Returns the job id, or None when it was not waiting.

        The new run job is a child of the job that parked the execution, whose waiting
        marker it closes: the write's job tree follows the execution past the decision.
        """
        job_id = run_job_id(execution_id, tag)
        parked = self._waiting_job(execution_id)
        moved = (
            Execution.update(status=ExecutionStatus.PENDING, job_id=job_id, updated_at=self.clock())
            .where(
                (Execution.id == execution_id)
                & (Execution.status == ExecutionStatus.WAITING_APPROVAL)
            )
            .execute()
        )
        if not moved:
            return None
        parent = parked[0] if parked is not None and parked[0] != job_id else None
        sent = self.send_run(Execution.get_by_id(execution_id), parent)
        self._end_waiting(parked, job_id)
        return sent

    def sweep(self, older_than_s: float, limit: int = 500) -> list[str]:
        """Re-send run messages of executions stuck pending or running (same job ids).

        A re-send stamps ``updated_at``, so an execution is re-sent at most once every
        ``older_than_s``: when the queue is that far behind, its message is most likely
        still waiting there, and a copy each sweep would only lengthen the queue.
        ``claimed_at`` stays as it is, so the re-sent message can take over a claim
        whose worker is gone.
        """
        now = self.clock()
        pending_before = now - timedelta(seconds=older_than_s)
        claim_before = now - timedelta(seconds=max(older_than_s, self.settings.claim_timeout_s))
        is_stuck = (Execution.updated_at < pending_before) & (
            (Execution.status == ExecutionStatus.PENDING)
            | (
                (Execution.status == ExecutionStatus.RUNNING)
                & (Execution.claimed_at < claim_before)
            )
        )
        stuck = list(Execution.select().where(is_stuck).order_by(Execution.updated_at).limit(limit))
        sent = []
        for execution in stuck:
            # Taken with a conditional UPDATE: one a worker claimed, finished or parked
            # since the SELECT, or another sweep re-sent, is left alone.
            stamped = (
                Execution.update(updated_at=now)
                .where((Execution.id == execution.id) & is_stuck)
                .execute()
            )
            if stamped:
                self.send_run(execution)
                sent.append(execution.id)
        return sent


def _owned(execution: Execution):
    """The execution is still running under this worker's claim.

    ``claim`` increments ``attempts``, so the attempt number a worker claimed with is its
    claim token: after another worker claims the execution, the first one's updates
    match nothing.
    """
    return _owned_by(execution.id, execution.attempts)


def _owned_by(execution_id: Any, attempts: Any):
    return (
        (Execution.id == execution_id)
        & (Execution.status == ExecutionStatus.RUNNING)
        & (Execution.attempts == attempts)
    )


def _claim_returning(db: Any, execution_id: str, now: datetime, stale: datetime) -> Any:
    """:meth:`Engine.claim`'s UPDATE, answering the claimed row (as an Execution), or
    None: one statement where a claim and a SELECT were two."""
    rows = _CLAIM_RETURNING.cursor(db, execution_id, now, stale).fetchall()
    if not rows:
        return None
    values = {f.name: f.python_value(v) for f, v in zip(_EXECUTION_FIELDS, rows[0], strict=True)}
    execution = Execution(__no_default__=1, **values)
    execution._dirty.clear()  # type: ignore[attr-defined]  # as peewee does for a row
    return execution


# The statements every execution runs, rendered once (see shared.sql).
_INSERT_EXECUTION = CompiledInsert(Execution, ignore_conflicts=True)
_INSERT_STEP_RUN = CompiledInsert(StepRun)


def _claim_query(execution_id: Any, now: Any, stale: Any) -> Any:
    return Execution.update(
        status=ExecutionStatus.RUNNING,
        attempts=Execution.attempts + 1,
        claimed_at=now,
        updated_at=now,
        started_at=peewee.fn.COALESCE(Execution.started_at, now),
    ).where(
        (Execution.id == execution_id)
        & (
            (Execution.status == ExecutionStatus.PENDING)
            | ((Execution.status == ExecutionStatus.RUNNING) & (Execution.claimed_at < stale))
        )
    )


_CLAIM = CompiledQuery(_claim_query)
_EXECUTION_FIELDS = Execution._meta.sorted_fields
_CLAIM_RETURNING = CompiledQuery(
    lambda execution_id, now, stale: _claim_query(execution_id, now, stale).returning(
        *_EXECUTION_FIELDS
    )
)
_COMPLETE = CompiledQuery(
    lambda execution_id, attempts, now: Execution.update(
        status=ExecutionStatus.COMPLETED, error=None, finished_at=now, updated_at=now
    ).where(_owned_by(execution_id, attempts))
)
_RENEW_CLAIM = CompiledQuery(
    lambda execution_id, attempts, now: Execution.update(claimed_at=now).where(
        _owned_by(execution_id, attempts)
    )
)
_FINISH_STEP = CompiledQuery(
    lambda run_id, status, output, branch, finished_at: StepRun.update(
        status=status, output=output, branch=branch, finished_at=finished_at
    ).where(StepRun.id == run_id)
)
