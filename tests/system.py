"""The real system, started for end-to-end tests.

:class:`System` runs the deployment's own commands as processes: the api web
(``gunicorn api_service.wsgi:app``, after ``python -m api_service migrate``), the
workflow web (``gunicorn workflow_service.wsgi:app``, after ``python -m
workflow_service migrate``), any number of Dramatiq worker groups (``dramatiq
workflow_service.worker --queues ...``) and, on request, the outbox relay and the
workflow scheduler. They share one Redis key namespace and fresh databases.

Typical use, one system per test module (starting processes costs seconds)::

    @pytest.fixture(scope="module")
    def system(tmp_path_factory, make_database_url, redis_url):
        with System.running(tmp_path_factory.mktemp("sys"), make_database_url, redis_url,
                            env={"RETRY_DELAY_SCALE": "0.1"}, workers=1) as system:
            yield system

    def test_something(system):
        api = system.api_client(sub="alice", roles=["editor"])       # httpx.Client
        policy = api.post("/policies", json={...}).json()
        [execution] = system.wait_for_executions(1, entity_id=policy["id"],
                                                 status="completed")
        detail = system.execution(execution["id"])            # with the step log
        system.kill(system.workers[0])          # kill -9 (the whole process group)
        system.start_worker()                   # another worker group
        system.terminate(system.workers[0])     # SIGTERM: in-flight work finishes

``system.workflow_client(...)`` talks to the workflow admin API; ``system.token(...)``
makes a JWT; ``system.env`` is the environment every process got (add to it with
``env=``; e.g. ``WORKFLOW_PLUGINS`` to load test-only step kinds). Logs are in the tmp
directory and printed when a process fails to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import redis

from shared.auth import issue_token
from shared.queues import ENTITY_QUEUES
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET
from tests.support import ROOT, ServiceProcess, free_port, poll

BIN = Path(sys.executable).parent
WORKER_READY = "is ready for action"


class System:
    def __init__(
        self,
        log_dir: Path,
        make_database_url: Callable[[str], str],
        redis_url: str,
        *,
        env: Mapping[str, str] | None = None,
        queues: Sequence[str] = tuple(ENTITY_QUEUES.values()),
        worker_threads: int = 4,
    ):
        self.log_dir = log_dir
        self.redis_url = redis_url
        self.namespace = f"t-sys-{uuid.uuid4().hex[:10]}"
        self.api_port = free_port()
        self.workflow_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.workflow_url = f"http://127.0.0.1:{self.workflow_port}"
        self.api_database_url = make_database_url("api")
        self.workflow_database_url = make_database_url("workflow")
        self.queues = list(queues)
        self.worker_threads = worker_threads
        self.env: dict[str, str] = {
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": self.namespace,
            "APP_ENV": "development",
            "JWT_SECRET": JWT_SECRET,
            "SERVICE_TOKEN_SECRET": SERVICE_TOKEN_SECRET,
            "API_DATABASE_URL": self.api_database_url,
            "WORKFLOW_DATABASE_URL": self.workflow_database_url,
            "API_URL": self.api_url,
            "WEB_WORKERS": "1",
            "WEB_THREADS": "8",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.api: ServiceProcess | None = None
        self.workflow: ServiceProcess | None = None
        self.workers: list[ServiceProcess] = []
        self.others: list[ServiceProcess] = []
        self._counter = 0
        self._clients: list[httpx.Client] = []

    # ------------------------------------------------------------------ start / stop

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        log_dir: Path,
        make_database_url: Callable[[str], str],
        redis_url: str,
        *,
        api: bool = True,
        workers: int = 1,
        relay: bool = False,
        scheduler: bool = False,
        **options: Any,
    ) -> Iterator[System]:
        system = cls(log_dir, make_database_url, redis_url, **options)
        try:
            system.start(api=api, workers=workers, relay=relay, scheduler=scheduler)
            yield system
        finally:
            system.stop()

    def start(
        self, *, api: bool = True, workers: int = 1, relay: bool = False, scheduler: bool = False
    ) -> System:
        services = ["workflow_service", *(["api_service"] if api else [])]
        for service in services:
            self.migrate(service)
        self.workflow = self._gunicorn(
            "workflow-web", "workflow_service.wsgi:app", self.workflow_port
        )
        if api:
            self.api = self._gunicorn("api-web", "api_service.wsgi:app", self.api_port)
        for _ in range(workers):
            self.start_worker()
        if relay:
            self.others.append(self._process("api-relay", self._python("api_service", "relay")))
        if scheduler:
            self.start_scheduler()
        self.workflow.wait_http(f"{self.workflow_url}/healthz")
        if self.api:
            self.api.wait_http(f"{self.api_url}/healthz")
        for worker in self.workers:
            worker.wait_log(WORKER_READY)
        return self

    def migrate(self, service: str) -> None:
        result = subprocess.run(
            self._python(service, "migrate"),
            env={**os.environ, **self.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"{service} migrate failed:\n{result.stdout}\n{result.stderr}")

    def start_worker(
        self, queues: Sequence[str] | None = None, threads: int | None = None, wait: bool = True
    ) -> ServiceProcess:
        self._counter += 1
        argv = [
            str(BIN / "dramatiq"),
            "workflow_service.worker",
            "--processes",
            "1",
            "--threads",
            str(threads or self.worker_threads),
            "--queues",
            *(queues or self.queues),
        ]
        worker = self._process(f"worker-{self._counter}", argv)
        self.workers.append(worker)
        if wait:
            worker.wait_log(WORKER_READY)
        return worker

    def start_scheduler(self) -> ServiceProcess:
        scheduler = self._process("scheduler", self._python("workflow_service", "scheduler"))
        self.others.append(scheduler)
        return scheduler

    def kill(self, process: ServiceProcess) -> None:
        """``kill -9`` the process group: the worker dies without any cleanup."""
        process.signal(signal.SIGKILL)
        assert process.proc is not None
        process.proc.wait(10)
        if process in self.workers:
            self.workers.remove(process)

    def terminate(self, process: ServiceProcess, timeout: float = 60) -> int | None:
        """SIGTERM to the main process only, as a container runtime does, and wait: a
        worker finishes its in-flight messages first. (Dramatiq's main process forwards
        the signal; a worker process that gets a second SIGTERM exits at once, so the
        whole process group must not be signalled.)"""
        assert process.proc is not None
        if process.alive():
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                process.signal(signal.SIGKILL)
                process.proc.wait(5)
        code = process.stop()
        if process in self.workers:
            self.workers.remove(process)
        return code

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        for process in [*self.workers, *self.others, self.workflow, self.api]:
            if process is not None and process.proc is not None:
                process.stop(signal.SIGTERM, 20)
        self.workers.clear()
        client = redis.Redis.from_url(self.redis_url)
        for pattern in (f"{self.namespace}:*", f"{self.namespace}-*", f"{self.namespace}.*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
        client.close()

    # -------------------------------------------------------------------- talking to it

    def token(
        self, sub: str = "alice", roles: Sequence[str] = ("editor",), tenant: str = "acme"
    ) -> str:
        return issue_token(JWT_SECRET, sub, list(roles), tenant)

    def api_client(
        self, sub: str = "alice", roles: Sequence[str] = ("editor",), tenant: str = "acme"
    ) -> httpx.Client:
        return self._client(self.api_url, self.token(sub, roles, tenant))

    def workflow_client(
        self, sub: str = "alice", roles: Sequence[str] = ("editor",), tenant: str = "acme"
    ) -> httpx.Client:
        return self._client(self.workflow_url, self.token(sub, roles, tenant))

    def executions(self, tenant: str = "acme", **filters: str) -> list[dict]:
        client = self.workflow_client(roles=["viewer"], tenant=tenant)
        response = client.get("/executions", params={"limit": 200, **filters})
        response.raise_for_status()
        return response.json()["items"]

    def wait_for_executions(
        self, count: int, *, tenant: str = "acme", timeout: float = 20, **filters: str
    ) -> list[dict]:
        """Poll until ``count`` executions match ``filters`` (e.g. status="completed")."""
        return poll(
            lambda: (found := self.executions(tenant, **filters)) and len(found) >= count and found,
            timeout=timeout,
            interval=0.05,
            message=f"{count} executions with {filters}",
        )

    def execution(self, execution_id: str, tenant: str = "acme") -> dict:
        client = self.workflow_client(roles=["viewer"], tenant=tenant)
        return client.get(f"/executions/{execution_id}").raise_for_status().json()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    # -------------------------------------------------------------------------- helpers

    def _client(self, base_url: str, token: str) -> httpx.Client:
        client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        self._clients.append(client)
        return client

    def _python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    def _gunicorn(self, name: str, app: str, port: int) -> ServiceProcess:
        argv = [
            str(BIN / "gunicorn"),
            "-c",
            "deploy/gunicorn.conf.py",
            "-b",
            f"127.0.0.1:{port}",
            app,
        ]
        return self._process(name, argv)

    def _process(self, name: str, argv: list[str]) -> ServiceProcess:
        return ServiceProcess(name, argv, self.env, self.log_dir).start()
