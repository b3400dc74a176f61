"""The features of the workflow service: the one list the entry points are built from.

Each feature package declares what it adds in its ``FEATURE``
(:class:`~workflow_service.kernel.feature.Feature`); :data:`FEATURES` lists them, and
``WORKFLOW_PLUGINS`` names further modules (a module with a ``FEATURE`` adds that
feature; one without is imported for the step kinds it registers itself). The web app
(:mod:`workflow_service.app`), the worker, the scheduler, the command line and the
migrations read the features from here and nowhere else; the kernel never imports this
module. Adding a feature, a queue's work say, is its package and one line below.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

from workflow_service.approvals.feature import FEATURE as APPROVALS
from workflow_service.audit.feature import FEATURE as AUDIT
from workflow_service.exports.feature import FEATURE as EXPORTS
from workflow_service.files.feature import FEATURE as FILES
from workflow_service.imports.feature import FEATURE as IMPORTS
from workflow_service.inbox.feature import FEATURE as INBOX
from workflow_service.kernel import hooks
from workflow_service.kernel.feature import PROVIDERS, Feature
from workflow_service.kernel.migrations import CORE_MIGRATIONS
from workflow_service.notifications.feature import FEATURE as NOTIFICATIONS
from workflow_service.ops.feature import FEATURE as OPS
from workflow_service.reports.feature import FEATURE as REPORTS
from workflow_service.steps import Directory, NoDirectory, register_steps
from workflow_service.steps.change_status import ChangeStatus
from workflow_service.steps.notify import Notify, register_channel
from workflow_service.tasks.feature import FEATURE as TASKS
from workflow_service.users.feature import FEATURE as USERS

#: The kernel's own contribution, declared like a feature: the step kinds every feature
#: builds on, the core actors (dispatch, run) and the core tables.
CORE = Feature(
    name="core",
    steps=(Notify, ChangeStatus),
    actor_modules=("workflow_service.actors",),
    migrations=tuple(CORE_MIGRATIONS),
)

#: The features, in the order their routes, jobs and hooks are added.
FEATURES: tuple[Feature, ...] = (
    CORE,
    TASKS,
    INBOX,
    OPS,
    APPROVALS,
    USERS,
    NOTIFICATIONS,
    FILES,
    REPORTS,
    AUDIT,
    EXPORTS,
    IMPORTS,
)

_lock = threading.Lock()
_installed: set[str] = set()


def plugin_features(plugins: Iterable[str] = ()) -> list[Feature]:
    """The features of the ``WORKFLOW_PLUGINS`` modules (importing each one)."""
    found = []
    for name in plugins:
        module = importlib.import_module(name)
        feature = getattr(module, "FEATURE", None)
        if feature is not None:
            if not isinstance(feature, Feature):
                raise TypeError(f"{name}.FEATURE is not a Feature")
            found.append(feature)
    return found


def all_features(plugins: Iterable[str] = ()) -> list[Feature]:
    return [*FEATURES, *plugin_features(plugins)]


def install(plugins: Iterable[str] = ()) -> list[Feature]:
    """Register every feature's steps and channels and subscribe its hooks, once per
    process (a second call adds only plugins not seen yet). Every entry point calls it
    before it builds an engine or an app; returns the features."""
    features = all_features(plugins)
    with _lock:
        for feature in features:
            if feature.name in _installed:
                continue
            register_steps(feature.steps)
            for name, handler in feature.channels.items():
                register_channel(name, handler)
            hooks.subscribe({k: v for k, v in feature.hooks.items() if k not in PROVIDERS})
            _installed.add(feature.name)
    return features


def providers(name: str, features: Iterable[Feature] = FEATURES) -> list[Callable[..., Any]]:
    """What the features provide under ``name`` (one of ``kernel.feature.PROVIDERS``)."""
    return [f.hooks[name] for f in features if name in f.hooks]


def make_directory(features: Iterable[Feature] = FEATURES) -> Directory:
    """The user directory that expands roles into users (none declared: roles stay)."""
    factories = providers("user_directory", features)
    return factories[-1]() if factories else NoDirectory()


def make_event_hooks(broker: Any = None, features: Iterable[Feature] = FEATURES) -> list:
    """What every event runs through before dispatch (approvals close on an entity's
    deletion, archiving or change); the executions they stop are reported to job
    status through ``broker``."""
    return [functools.partial(hook, broker=broker) for hook in providers("entity_event", features)]


def is_expected_error(exc: BaseException, features: Iterable[Feature] = FEATURES) -> bool:
    return any(check(exc) for check in providers("expected_error", features))
