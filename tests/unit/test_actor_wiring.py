"""The worker's actors against the queue catalog, with Dramatiq's StubBroker.

Every actor declares the queue, retries and time limit the catalog (shared/queues.py)
gives its queue, so an operator reading the catalog knows how each message behaves.
The actors are registered in a process of their own (:mod:`tests.unit.actor_wiring`),
on a StubBroker, with Redis unreachable and no database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.events import dispatch_actor_name
from shared.queues import CATALOG, ENTITY_QUEUES, spec_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wiring() -> dict:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:9/0", "APP_ENV": "development"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.actor_wiring"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def test_every_actor_module_registers_actors_and_is_named_by_another_module(wiring):
    assert "workflow_service.actors" in wiring["modules"]
    registered_from = {actor["module"] for actor in wiring["actors"].values()}
    for module, named_by in wiring["modules"].items():
        assert module in registered_from
        # The worker imports it, or a feature declares it for the worker to import.
        assert named_by, f"no module of the service imports {module}: no worker runs it"


def test_every_actor_takes_its_retries_and_time_limit_from_its_queue(wiring):
    for name, actor in wiring["actors"].items():
        assert actor["queue"] in CATALOG, f"{name} is on {actor['queue']}, not a catalog queue"
        spec = spec_for(actor["queue"])
        assert actor["max_retries"] == spec.max_retries, name
        assert actor["time_limit"] == spec.time_limit_ms, name


def test_every_queue_of_the_catalog_has_actors(wiring):
    assert {actor["queue"] for actor in wiring["actors"].values()} == set(CATALOG)
    for queue in CATALOG:
        assert {queue, f"{queue}.DQ"} <= set(wiring["queues"])


@pytest.mark.parametrize("entity_type", sorted(ENTITY_QUEUES))
def test_an_entity_types_events_are_dispatched_on_its_own_queue(wiring, entity_type):
    actor = wiring["actors"][dispatch_actor_name(entity_type)]
    assert actor["queue"] == ENTITY_QUEUES[entity_type]
    # An event that is not one never takes the retries meant for a database outage.
    assert "InvalidEvent" in actor["throws"]


def test_an_exhausted_message_is_handed_to_an_actor_of_the_same_queue(wiring):
    handovers = {
        name: actor["on_retry_exhausted"]
        for name, actor in wiring["actors"].items()
        if actor["on_retry_exhausted"]
    }
    assert handovers, "the run actors name what happens when their retries run out"
    for name, target in handovers.items():
        assert target in wiring["actors"], f"{name} hands over to {target}, which is no actor"
        assert wiring["actors"][target]["queue"] == wiring["actors"][name]["queue"]
