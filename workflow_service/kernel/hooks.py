"""Named lifecycle hooks: what happened, told to whichever features listen.

The kernel (and a feature) *fires* a hook where something happens; features
*subscribe* to it through their :class:`~workflow_service.kernel.feature.Feature`'s
``hooks`` (``{"execution_ended": close_approvals}``), installed once per process by
``workflow_service.features.install``. Neither side imports the other: the engine
records a step without knowing there is an audit trail, and cancelling an execution
closes its approvals whichever path cancelled it (HTTP, an operator, an entity's
lifecycle) without that path knowing approvals exist.

Every hook is fired synchronously, in the caller's thread and transaction (the audit
hooks rely on it: the entry commits or rolls back with the change it describes). A hook
with no subscriber does nothing. Subscribing is idempotent (the same function twice is
one subscriber), so installing the features twice is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Who acts when no person does (the engine running steps, the scheduler).
SYSTEM_ACTOR = "system"


class UnknownHook(LookupError):
    """A feature subscribed to a hook name the kernel does not fire."""


class Hook:
    """One named hook and its subscribers, called in subscription order."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc
        self._subscribers: list[Callable[..., Any]] = []

    def subscribe(self, fn: Callable[..., Any]) -> None:
        if fn not in self._subscribers:
            self._subscribers.append(fn)

    def unsubscribe(self, fn: Callable[..., Any]) -> None:
        if fn in self._subscribers:
            self._subscribers.remove(fn)

    @property
    def subscribers(self) -> tuple[Callable[..., Any], ...]:
        return tuple(self._subscribers)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        for fn in tuple(self._subscribers):
            fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Hook {self.name} ({len(self._subscribers)} subscribers)>"


# ------------------------------------------------------------------ execution lifecycle

#: ``(execution_id, status, reason)``: an execution was ended from outside its run
#: (cancelled by a person, an operator or an entity's lifecycle; failed after retries
#: or by a stale decision). Fired after the ending's transaction committed, so a
#: subscriber's own writes (closing the execution's approvals) race with nothing.
execution_ended = Hook("execution_ended", "an execution was cancelled or failed from outside")

# -------------------------------------------------- what the audit trail listens to
# Fired inside the transaction of the change they describe.

#: ``(event)``: a trigger event accepted for dispatch.
event_received = Hook("event_received", "a trigger event was accepted for dispatch")
#: ``(execution, what, digest=None, actor=None)``: requested, started, completed,
#: cancelled or failed.
execution_recorded = Hook("execution_recorded", "an execution changed state")
#: ``(execution, run, status, *, output=None, error=None)``: one step attempt ended.
step_recorded = Hook("step_recorded", "one attempt of one step ended")
#: ``(workflow, what, actor, **digest)``: created, updated, (de)activated, archived,
#: deleted.
workflow_changed = Hook("workflow_changed", "a workflow definition changed")
#: ``(tenant_id, task_id, what, actor, **digest)``: a task was created or completed.
task_recorded = Hook("task_recorded", "a task was created or completed")
#: ``(tenant_id, user_id, what, **digest)``: a directory user changed.
user_recorded = Hook("user_recorded", "a user of the directory changed")
#: ``(request, what, actor, **details)``: an approval was requested, decided, closed.
approval_recorded = Hook("approval_recorded", "an approval request changed")
#: ``(delivery, claim_token)``: a delivery's attempt ended.
delivery_recorded = Hook("delivery_recorded", "a delivery's attempt ended")
#: ``(tenant_id, source_id, action, *, actor, entity_type, entity_id, digest=None,
#: at=None)``: any other audited action.
action_recorded = Hook("action_recorded", "any other audited action")
#: ``(actor)``: who the following recorded actions of this thread are by (a command
#: line import names itself); ``None`` forgets it.
acting_as = Hook("acting_as", "the actor of this thread's following records")

#: Every hook by name: what a feature's ``hooks`` may name.
HOOKS: dict[str, Hook] = {
    hook.name: hook
    for hook in (
        execution_ended,
        event_received,
        execution_recorded,
        step_recorded,
        workflow_changed,
        task_recorded,
        user_recorded,
        approval_recorded,
        delivery_recorded,
        action_recorded,
        acting_as,
    )
}


def subscribe(subscriptions: Mapping[str, Callable[..., Any]]) -> None:
    """Subscribe each function to the hook it is listed under."""
    unknown = sorted(set(subscriptions) - set(HOOKS))
    if unknown:
        raise UnknownHook(f"no such hook(s): {', '.join(unknown)}; hooks: {', '.join(HOOKS)}")
    for name, fn in subscriptions.items():
        HOOKS[name].subscribe(fn)


def fire_after_commit(hook: Hook, *args: Any) -> None:
    """Fire ``hook`` where the change it reports has already committed: a subscriber
    that fails is logged, not raised, since the change stands regardless (and the
    housekeeping jobs catch up with what the subscriber did not do)."""
    for fn in hook.subscribers:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("hook %s: subscriber %r failed", hook.name, fn)
