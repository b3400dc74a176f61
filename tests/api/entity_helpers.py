"""Shortcuts of the assessment, evidence and assignment tests: calls on any collection."""

from __future__ import annotations

from tests.api.helpers import ApiClient


class EntityClient(ApiClient):
    """An ApiClient with calls on ``/assessments`` and ``/evidence`` too."""

    def post(self, path: str, body: dict, *roles: str, sub: str = "alice", headers=None):
        return self.client.simulate_post(
            path,
            json=body,
            headers={**self.headers(*(roles or ("editor",)), sub=sub), **(headers or {})},
        )

    def read(self, path: str, *roles: str, sub: str = "alice", params=None):
        return self.client.simulate_get(
            path, params=params, headers=self.headers(*(roles or ("viewer",)), sub=sub)
        )

    def edit(self, path: str, body: dict, version=None, *roles: str, sub="alice", headers=None):
        extra = dict(headers or {})
        if version is not None:
            extra["If-Match"] = f'"{version}"'
        return self.client.simulate_patch(
            path,
            json=body,
            headers={**self.headers(*(roles or ("editor",)), sub=sub), **extra},
        )

    def policy(self, **fields) -> dict:
        return self.create(**fields)

    def assessment(self, sub: str = "alice", **fields) -> dict:
        resp = self.post("/assessments", {"title": "Q1 access review", **fields}, sub=sub)
        assert resp.status_code == 201, resp.text
        return resp.json

    def evidence(self, sub: str = "alice", **fields) -> dict:
        body = {"title": "Access list export", "kind": "document", **fields}
        resp = self.post("/evidence", body, sub=sub)
        assert resp.status_code == 201, resp.text
        return resp.json

    def move(self, collection: str, entity_id: str, to: str, *roles, sub="alice", headers=None):
        return self.post(
            f"/{collection}/{entity_id}/transitions",
            {"to": to},
            *(roles or ("admin",)),
            sub=sub,
            headers=headers,
        )
