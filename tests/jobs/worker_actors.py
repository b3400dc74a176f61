"""Test actors for real ``dramatiq`` worker processes (``dramatiq tests.jobs.worker_actors``).

Behaviour is steered through Redis keys the test sets, so the test decides when an
actor fails, succeeds or finishes; the broker is the system's own (``create_broker``),
configured from the environment like every process of the system.
"""

from __future__ import annotations

import dramatiq

from shared.broker import actor_options, create_broker
from shared.jobstatus import report_progress
from shared.settings import CommonSettings, Env

settings = CommonSettings(**CommonSettings.common_from_env(Env()))
broker = create_broker(settings)
dramatiq.set_broker(broker)
redis = broker.client


def key(name: str) -> str:
    return f"{settings.namespace}:test:{name}"


@dramatiq.actor(store_results=True, **actor_options("governance.policy"))
def flaky(name: str, failures: int) -> str:
    """Fails ``failures`` times, then succeeds."""
    count = redis.incr(key(name))
    if count <= failures:
        raise RuntimeError(f"failure {count} of {failures}")
    return f"succeeded on run {count}"


@dramatiq.actor(**actor_options("governance.notification"))
def deliver(name: str) -> None:
    """Fails until the test marks the destination up."""
    if not redis.exists(key(f"{name}:up")):
        raise ConnectionError(f"destination {name} is down")


@dramatiq.actor(**actor_options("governance.export"))
def export(name: str, fail: bool = False, hold: bool = False) -> None:
    """Reports progress; with ``hold`` waits until the test releases it."""
    report_progress(50, f"halfway through {name}")
    if hold:
        redis.blpop([key(f"{name}:release")], timeout=60)
    if fail:
        raise ValueError(f"export {name} is broken")
    report_progress(100, "done")


@dramatiq.actor(**actor_options("governance.export"))
def later(name: str) -> None:
    """Its first run asks for a retry after ``<name>:delay`` ms; later runs succeed."""
    if redis.incr(key(name)) == 1:
        raise dramatiq.Retry(delay=int(redis.get(key(f"{name}:delay")) or 0))
