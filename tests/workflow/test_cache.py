"""The active workflow cache reloads a stale entry once, however many threads need it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import poll
from workflow_service.cache import ActiveWorkflow, ActiveWorkflowCache, bump_version

THREADS = 16
KEY = ("acme", "policy", "on_create")


class CountingRedis:
    """Real Redis, counting the version reads (each ``get`` of the cache makes one)."""

    def __init__(self, client):
        self.client = client
        self.reads = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            self.reads += 1
        return self.client.get(key)


class CountingCache(ActiveWorkflowCache):
    """A cache whose loads are counted, and held until ``hold_until`` says go."""

    def __init__(self, client, namespace):
        super().__init__(client, namespace)
        self.generation = 0
        self.hold_until = lambda: True
        self.fail_next: type[BaseException] | None = None

    def _load(self, tenant_id, entity_type, trigger):
        with self._lock:
            self.loads += 1
            failing, self.fail_next = self.fail_next, None
        # Hold the load until every thread has asked (all of them found it stale).
        poll(self.hold_until, timeout=10, interval=0.001, message="every thread asked")
        if failing:
            raise failing("the load did not finish")
        self.generation += 1
        return [ActiveWorkflow(f"w{self.generation}", "w", self.generation, ())]


@pytest.fixture
def counting(redis_client, namespace):
    client = CountingRedis(redis_client)
    return client, CountingCache(client, namespace)


def get_in_threads(cache, count=THREADS):
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: cache.get(*KEY), range(count)))


def test_sixteen_threads_on_a_stale_entry_make_one_load(counting, redis_client, namespace):
    client, cache = counting
    [first] = cache.get(*KEY)
    assert cache.loads == 1

    # Given a workflow change (the version moves) and every thread asking at once
    bump_version(redis_client, namespace, "acme")
    client.reads = 0
    cache.hold_until = lambda: client.reads >= THREADS
    results = get_in_threads(cache)

    # Then one of them reloaded the entry and all of them use that load
    assert cache.loads == 2
    assert {tuple(r) for r in results} == {(ActiveWorkflow("w2", "w", 2, ()),)}
    assert first.id == "w1"


def test_sixteen_threads_on_an_empty_cache_make_one_load(counting):
    client, cache = counting
    cache.hold_until = lambda: client.reads >= THREADS
    results = get_in_threads(cache)
    assert cache.loads == 1
    assert {r[0].id for r in results} == {"w1"}


def test_a_thread_that_saw_a_newer_version_does_not_take_an_older_load(
    counting, redis_client, namespace
):
    client, cache = counting
    leader_loading = threading.Event()
    go = threading.Event()

    def hold():
        leader_loading.set()
        return go.is_set()

    cache.hold_until = hold
    with ThreadPoolExecutor(1) as pool:
        # Given a load under way that read version 0
        leader = pool.submit(cache.get, *KEY)
        assert leader_loading.wait(10)
        # When the workflows change meanwhile and another thread asks
        bump_version(redis_client, namespace, "acme")
        reads = client.reads
        results: list = []
        waiter = threading.Thread(target=lambda: results.append(cache.get(*KEY)))
        waiter.start()
        poll(lambda: client.reads > reads, timeout=10, message="the second thread asked")
        go.set()
        assert leader.result()[0].id == "w1"
        waiter.join(10)

    # Then it loads again rather than use what was loaded before the change
    assert [r[0].id for r in results] == ["w2"]
    assert cache.loads == 2


class TimeLimitExceeded(BaseException):
    """Like Dramatiq's time limit: raised inside the thread, not an Exception."""


@pytest.mark.parametrize("error", [ConnectionError, TimeLimitExceeded])
def test_when_the_load_fails_a_waiting_thread_loads_itself(counting, error):
    client, cache = counting
    cache.fail_next = error
    cache.hold_until = lambda: client.reads >= 2
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(cache.get, *KEY) for _ in range(2)]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=10)[0].id)
            except error:
                outcomes.append("failed")
    assert sorted(outcomes) == ["failed", "w1"]
    assert cache.loads == 2
