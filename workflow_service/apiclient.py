"""The workflow service's HTTP client for the api, with a short-lived service token.

Steps call the api only through this: it signs a service token (``SERVICE_TOKEN_SECRET``,
the service audience, roles ``["service"]``) for the execution's tenant, cached until
shortly before it expires, and keeps one pooled connection set per process. A user
token can never carry the ``service`` role, so only this client acts as the service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from shared.auth import issue_service_token
from shared.lifecycles import lifecycle_of

SERVICE_SUBJECT = "workflow-service"
TOKEN_TTL_S = 300
#: Fields of an entity the api answers with that a run's entity data leaves out, as
#: trigger events do (``content`` can be large; ``id`` and ``type`` are set apart).
NOT_IN_SNAPSHOT = frozenset({"id", "tenant", "content", "jobs"})


class ApiUnavailable(Exception):
    """The api could not be asked, or answered with an error that is not about the
    entity (a retry may succeed)."""


class ApiClient:
    def __init__(
        self,
        base_url: str,
        service_secret: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self.service_secret = service_secret
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def service_token(self, tenant_id: str) -> str:
        now = time.time()
        with self._lock:
            cached = self._tokens.get(tenant_id)
            if cached and cached[1] - now > 60:
                return cached[0]
            token = issue_service_token(
                self.service_secret, tenant_id, SERVICE_SUBJECT, ttl=TOKEN_TTL_S
            )
            self._tokens[tenant_id] = (token, now + TOKEN_TTL_S)
            return token

    def request(
        self,
        method: str,
        path: str,
        tenant_id: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {self.service_token(tenant_id)}"}
        all_headers.update(headers or {})
        return self.http.request(method, path, json=json, headers=all_headers)

    def close(self) -> None:
        self.http.close()


def load_entity(
    api: Any, entity_type: str, entity_id: str, tenant_id: str
) -> dict[str, Any] | None:
    """The entity as the api shows it now (``GET /policies/{id}`` through ``api``, an
    :class:`ApiClient`, with the tenant's service token), without the fields events
    leave out; None when the api has no such entity (or no entities of that type).
    Raises :class:`ApiUnavailable`."""
    lifecycle = lifecycle_of(entity_type)
    if lifecycle is None:
        return None
    path = f"/{lifecycle.collection}/{quote(entity_id, safe='')}"
    try:
        response = api.request("GET", path, tenant_id)
    except httpx.HTTPError as exc:
        raise ApiUnavailable(f"GET {path}: {type(exc).__name__}") from None
    if response.status_code in (400, 404):
        return None  # not an id of this tenant's (or any) entity
    if response.status_code != 200:
        raise ApiUnavailable(f"GET {path}: the api answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiUnavailable(f"GET {path}: the api answered no JSON object")
    return {k: v for k, v in body.items() if k not in NOT_IN_SNAPSHOT}
