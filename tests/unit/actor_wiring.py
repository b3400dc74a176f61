"""Prints, as JSON, every actor the worker registers and the options it declares.

Run as ``python -m tests.unit.actor_wiring`` (a process of its own, so the actors'
registration never touches the test process's broker): it stands in for
:mod:`workflow_service.broker` with a module whose broker is Dramatiq's
``StubBroker``, so nothing reaches Redis or a database, then imports every module of
the service that registers actors.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
import types
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.stub import StubBroker
from dramatiq.results import Results
from dramatiq.results.backends.stub import StubBackend

#: Nothing listens here: a client that tried to connect would fail at once.
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"


def _named_modules(source: str) -> set[str]:
    """Dotted module names a source imports or spells out as a string."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
    return names


def actor_modules() -> dict[str, list[str]]:
    """Every module of the workflow service that registers actors (found by its source,
    so a new one is covered without a list to keep), with the other modules of the
    service that import or name it (the worker, a feature's declaration): an actor
    module no other module names is never imported by a worker."""
    import workflow_service

    root = Path(workflow_service.__file__).parent
    sources = {
        ".".join(("workflow_service", *path.relative_to(root).with_suffix("").parts)): (
            path.read_text()
        )
        for path in sorted(root.rglob("*.py"))
    }
    registering = [
        module
        for module, source in sources.items()
        if "dramatiq.actor(" in source or "@dramatiq.actor" in source
    ]
    named = {module: _named_modules(source) for module, source in sources.items()}
    return {
        module: sorted(other for other in sources if other != module and module in named[other])
        for module in registering
    }


def stub_broker_module() -> types.ModuleType:
    from workflow_service.db import database
    from workflow_service.settings import WorkflowSettings

    broker = StubBroker()  # Dramatiq's default middleware: retries, time limits...
    broker.add_middleware(Results(backend=StubBackend()))  # store_results, result_ttl
    # Actor modules read the broker's Redis client (the audit kick keeps it): a client
    # is only a connection pool until used, and nothing here uses it.
    broker.client = redis.Redis.from_url(UNREACHABLE_REDIS)  # type: ignore[attr-defined]
    dramatiq.set_broker(broker)
    module = types.ModuleType("workflow_service.broker")
    module.__dict__.update(
        settings=WorkflowSettings(redis_url=UNREACHABLE_REDIS, jwt_secret="x" * 40),
        broker=broker,
        db=None,
        database_proxy=database,
    )
    return module


def describe() -> dict:
    sys.modules["workflow_service.broker"] = module = stub_broker_module()
    modules = actor_modules()
    for name in modules:
        importlib.import_module(name)
    broker = module.broker
    actors = {}
    for name in broker.get_declared_actors():
        actor = broker.get_actor(name)
        options = dict(actor.options)
        actors[name] = {
            "queue": actor.queue_name,
            "module": actor.fn.__module__,
            "max_retries": options.get("max_retries"),
            "time_limit": options.get("time_limit"),
            "on_retry_exhausted": options.get("on_retry_exhausted"),
            "throws": [exc.__name__ for exc in options.get("throws", ())],
        }
    return {
        "modules": modules,
        "actors": actors,
        "queues": sorted(broker.get_declared_queues()),
    }


if __name__ == "__main__":
    json.dump(describe(), sys.stdout, indent=1, sort_keys=True)
