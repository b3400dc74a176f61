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

import httpx

from shared.auth import issue_service_token

SERVICE_SUBJECT = "workflow-service"
TOKEN_TTL_S = 300


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
