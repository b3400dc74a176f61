"""What a feature package adds, declared in one object.

A feature (tasks, approvals, notifications, audit, ...) is a package whose ``feature``
module exposes ``FEATURE = Feature(...)``; ``workflow_service.features`` lists them.
The entry points read only that list: the web app adds each feature's ``routes``, the
worker imports its ``actor_modules``, the scheduler adds its ``jobs``, ``migrate``
applies its ``migrations``, and every process registers its ``steps`` and ``channels``
and subscribes its ``hooks``. Adding a feature (a queue's work, say) is a package with a
``FEATURE`` and one line in that list.

Actors are named by module rather than imported here: importing an actor module
declares its actors on Dramatiq's global broker, which only the worker (whose broker
module comes first) and the processes that send to them should do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from shared.db import Migration
from workflow_service.steps.base import Step

#: ``(app, docs, context)``: adds a feature's HTTP routes to the admin web app; the
#: context carries the settings, deps, engine and workflow store.
RouteRegistrar = Callable[[Any, Any, Any], None]
#: ``(scheduler, context)``: adds a feature's APScheduler jobs; each checks
#: ``context.is_leader()`` unless every scheduler process must run it.
JobRegistrar = Callable[[Any, Any], None]
#: ``(ctx, addresses, subject, body, config)``: delivers a ``notify`` step on a channel
#: and returns a JSON-able summary for the step log.
ChannelHandler = Callable[..., Any]


@dataclass(frozen=True)
class Feature:
    """Everything a feature package adds to the kernel.

    ``settings`` names the sections of ``WorkflowSettings`` the feature reads (the
    settings object is read once for the whole service); ``hooks`` maps hook names of
    :mod:`workflow_service.kernel.hooks` to the feature's subscribers, plus two
    providers the processes are built with: ``entity_event`` (called with each trigger
    event and ``broker=`` before dispatch), ``user_directory`` (a factory of the
    directory that expands roles into people; the last feature naming one wins) and
    ``expected_error`` (``exc -> bool``: a retried failure that is part of normal
    operation, logged as one line by the worker).
    """

    name: str
    steps: tuple[type[Step], ...] = ()
    channels: Mapping[str, ChannelHandler] = field(default_factory=dict)
    actor_modules: tuple[str, ...] = ()
    routes: tuple[RouteRegistrar, ...] = ()
    jobs: tuple[JobRegistrar, ...] = ()
    settings: tuple[str, ...] = ()
    hooks: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    migrations: tuple[Migration, ...] = ()

    def __post_init__(self) -> None:
        # Read-only views: a Feature is a declaration, not a place to register things.
        object.__setattr__(self, "channels", MappingProxyType(dict(self.channels)))
        object.__setattr__(self, "hooks", MappingProxyType(dict(self.hooks)))


#: Names a feature's ``hooks`` may use besides the hooks of :mod:`.hooks`: providers
#: the processes are built with rather than events the kernel fires.
PROVIDERS = ("entity_event", "user_directory", "expected_error")
