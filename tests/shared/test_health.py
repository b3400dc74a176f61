"""Exec-probe liveness of workers, relay and scheduler (shared.health), and
``migrate --wait``'s retry (shared.db.wait_for_database)."""

from __future__ import annotations

import time

import peewee
import pytest
import redis

from shared import health
from shared.db import wait_for_database


def test_probe_passes_while_the_process_beats_and_fails_once_it_stops(redis_client, namespace):
    # Given no process has beaten yet on this host
    assert health.check(redis_client, namespace, "worker") is not None
    # When a heartbeat runs
    beat = health.Heartbeat(redis_client, namespace, "worker", interval_s=0.05).start()
    deadline = time.monotonic() + 5
    while health.check(redis_client, namespace, "worker") and time.monotonic() < deadline:
        time.sleep(0.01)
    # Then the probe passes, for this role only
    assert health.check(redis_client, namespace, "worker") is None
    assert "no relay heartbeat" in health.check(redis_client, namespace, "relay")
    # And once the process stops, it fails again
    beat.stop()
    assert health.check(redis_client, namespace, "worker") is not None


def test_a_process_that_stops_renewing_fails_after_its_ttl(redis_client, namespace):
    beat = health.Heartbeat(redis_client, namespace, "scheduler", interval_s=0.05)
    beat.beat()  # one beat, then silence (a hung or killed process)
    assert health.check(redis_client, namespace, "scheduler") is None
    deadline = time.monotonic() + 5
    while health.check(redis_client, namespace, "scheduler") is None:
        assert time.monotonic() < deadline, "the key outlived its TTL"
        time.sleep(0.02)


def test_main_exit_codes(redis_url, redis_client, namespace, capsys):
    assert health.main("probe", redis_url, namespace, ["--role", "relay"], "worker") == 1
    health.Heartbeat(redis_client, namespace, "relay").beat()
    assert health.main("probe", redis_url, namespace, ["--role", "relay"], "worker") == 0
    assert "relay ok" in capsys.readouterr().out


def test_unreachable_redis_is_not_judged_a_dead_process():
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    assert health.check(client, "ns", "worker") is None


class _Refusing(peewee.SqliteDatabase):
    def __init__(self, failures: int):
        super().__init__(":memory:")
        self.failures = failures

    def _connect(self):
        if self.failures:
            self.failures -= 1
            raise peewee.OperationalError("connection refused")
        return super()._connect()


def test_wait_for_database_retries_until_it_answers_then_gives_up_at_the_deadline():
    now = [0.0]
    sleep = lambda s: now.__setitem__(0, now[0] + s)  # noqa: E731
    # Given a database that refuses three times, then answers
    db = _Refusing(failures=3)
    wait_for_database(db, 60, clock=lambda: now[0], sleep=sleep)
    assert now[0] == 3.0 and not db.is_closed()
    # Given one that never answers: the last error after the wait
    db = _Refusing(failures=10**6)
    now[0] = 0.0
    with pytest.raises(peewee.OperationalError):
        wait_for_database(db, 5, clock=lambda: now[0], sleep=sleep)
    assert 5.0 <= now[0] <= 6.0
    # And without --wait, a single attempt
    db = _Refusing(failures=1)
    with pytest.raises(peewee.OperationalError):
        wait_for_database(db, 0, clock=lambda: now[0], sleep=sleep)
