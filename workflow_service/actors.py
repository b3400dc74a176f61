"""The workflow actors, one set per entity queue.

A Dramatiq actor is bound to one queue and takes its retries and time limit from it, so
every entity queue (governance.policy, .assessment, .evidence) gets its own actors:

* ``dispatch_event`` / ``dispatch_event_<entity>``: a trigger event -> executions.
* ``run_execution`` / ``run_execution_<entity>``: run or resume one execution.
* ``execution_failed`` / ``execution_failed_<entity>``: the ``on_retry_exhausted``
  target of the run actor; marks the execution failed with its last error. Dramatiq
  has already dead-lettered the run message by then.

Messages that can never succeed (not an event, an unknown execution) raise an
exception listed in ``throws``: they fail at once without retries, land in the
dead-letter queue and are recorded in ``rejected_message``.
"""

from __future__ import annotations

import json
import logging
import threading

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared.broker import actor_options
from shared.events import DISPATCH_JOBS, InvalidEvent, parse_event
from shared.jobstatus import report_subject
from shared.queues import base_queue_name
from workflow_service import broker as worker_broker
from workflow_service.engine import (
    Engine,
    ExecutionFailed,
    UnknownExecution,
    exhausted_actor_name,
    run_actor_name,
)
from workflow_service.models import Execution, RejectedMessage, is_id
from workflow_service.runtime import build_engine

log = logging.getLogger(__name__)
_engine: Engine | None = None
_engine_lock = threading.Lock()


class InvalidMessage(ValueError):
    """A message whose arguments are not what the actor takes."""


def engine() -> Engine:
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = build_engine(
                    worker_broker.settings,
                    worker_broker.database_proxy,
                    worker_broker.broker,
                    worker_broker.broker.client,
                )
    return _engine


def record_rejected(reason: str, args: tuple, kwargs: dict) -> None:
    message = CurrentMessage.get_current_message()
    try:
        payload = json.dumps({"args": args, "kwargs": kwargs}, default=str)
    except (TypeError, ValueError):
        payload = repr(args)
    try:
        RejectedMessage.create(
            message_id=message.message_id if message else "",
            queue_name=message.queue_name if message else "",
            actor_name=message.actor_name if message else "",
            reason=reason[:4000],
            payload=payload[:4000],
        )
    except Exception:  # noqa: BLE001 - the dead-letter queue still holds it
        log.exception("could not record the rejected message")


def dispatch_event(*args, **kwargs) -> None:
    """A trigger event: create the matching executions and send their run messages."""
    if len(args) != 1 or kwargs:
        reason = "a dispatch message takes exactly one argument, the event"
        record_rejected(reason, args, kwargs)
        raise InvalidMessage(reason)
    try:
        event = parse_event(args[0])
    except InvalidEvent as exc:
        record_rejected(f"invalid event: {exc}", args, kwargs)
        raise
    message = CurrentMessage.get_current_message()
    if message is not None and base_queue_name(message.queue_name) != event.queue_name:
        reason = f"a {event.entity_type} event arrived on {message.queue_name}"
        record_rejected(reason, args, kwargs)
        raise InvalidEvent(reason)
    title = event.data.get("title") if isinstance(event.data, dict) else None
    report_subject(entity_type=event.entity_type, entity_id=event.entity_id, entity_title=title)
    # Returns nothing: the job's record lists the run jobs it sent (see _register).
    engine().dispatch(event, parent_job_id=message.message_id if message else None)


def run_execution(*args, **kwargs) -> None:
    """Run one execution from its first unfinished step."""
    if len(args) != 1 or kwargs or not is_id(args[0]):
        reason = "a run message takes exactly one argument, an execution id"
        record_rejected(reason, args, kwargs)
        raise InvalidMessage(reason)
    try:
        engine().run(args[0])
    except UnknownExecution as exc:
        record_rejected(str(exc), args, kwargs)
        raise


def execution_failed(message_data: dict, retry_info: dict) -> None:
    """Retries are exhausted: the execution fails with its last error."""
    execution_id = (message_data.get("args") or [None])[0]
    if not is_id(execution_id):
        return
    last_error = (
        Execution.select(Execution.error).where(Execution.id == execution_id).scalar()
        or "unknown error"
    )
    attempts = int(retry_info.get("retries", 0)) + 1
    engine().fail(execution_id, f"gave up after {attempts} attempts: {last_error}")


def _register() -> None:
    # The dispatch actors are declared from the job specs the api sends with; each entity
    # type's run actors share its dispatch actor's queue.
    for entity, dispatch in DISPATCH_JOBS.items():
        options = actor_options(dispatch.queue)
        dramatiq.actor(
            actor_name=dispatch.name,
            throws=(InvalidEvent, InvalidMessage),
            # No stored result: the job's record lists its run jobs as children, each
            # with its execution's id, so a stored copy bought nothing but a round trip.
            **options,
        )(dispatch_event)
        dramatiq.actor(
            actor_name=run_actor_name(entity),
            throws=(InvalidMessage, UnknownExecution, ExecutionFailed),
            on_retry_exhausted=exhausted_actor_name(entity),
            **options,
        )(run_execution)
        dramatiq.actor(actor_name=exhausted_actor_name(entity), **options)(execution_failed)


_register()
