"""``/tenant-settings``: a tenant's own settings, read by its people, changed by its
admin. ``approval_requires_workflow`` makes a workflow's approval the only way a
policy of the tenant becomes ``approved``."""

from __future__ import annotations

from typing import Any

import falcon
import peewee

from api_service.models import TenantSettings
from api_service.outbox import Clock
from api_service.policies import json_value
from api_service.schemas import TenantSettingsOut, TenantSettingsPatch
from shared.http import route

#: Everyone of the tenant may read them (people need to know how approval works there).
READ_ROLES = ("viewer", "editor", "approver", "auditor")
WRITE_ROLES = ("admin",)


class TenantSettingsStore:
    def __init__(self, db: peewee.Database, clock: Clock):
        self.db = db
        self.clock = clock

    def get(self, tenant: str) -> dict[str, Any]:
        row = TenantSettings.get_or_none(TenantSettings.tenant == tenant)
        if row is None:
            return {
                "tenant": tenant,
                "approval_requires_workflow": False,
                "updated_by": None,
                "updated_at": None,
            }
        return {
            "tenant": row.tenant,
            "approval_requires_workflow": row.approval_requires_workflow,
            "updated_by": row.updated_by,
            "updated_at": json_value(row.updated_at),
        }

    def update(self, tenant: str, by: str, changes: dict[str, Any]) -> dict[str, Any]:
        values = {**changes, "updated_by": by, "updated_at": self.clock()}
        with self.db.atomic():
            (
                TenantSettings.insert(tenant=tenant, **values)
                .on_conflict(conflict_target=[TenantSettings.tenant], update=values)
                .execute()
            )
        return self.get(tenant)


class TenantSettingsResource:
    docs = {
        "GET": route(
            "The caller's tenant settings (defaults until its admin changes them)",
            response=TenantSettingsOut,
            roles=READ_ROLES,
        ),
        "PATCH": route(
            "Change the caller's tenant settings (its admin only); "
            "approval_requires_workflow: only the workflow service approves policies",
            request=TenantSettingsPatch,
            response=TenantSettingsOut,
            roles=WRITE_ROLES,
        ),
    }

    def __init__(self, store: TenantSettingsStore, max_body_bytes: int):
        self.store = store
        self.max_body_bytes = max_body_bytes

    def on_get(self, req, resp):
        principal = req.context.principal
        return self.store.get(principal.tenant)

    def on_patch(self, req, resp):
        principal = req.context.principal
        data = req.context.body
        changes = data.model_dump(exclude_unset=True)
        return self.store.update(principal.tenant, principal.sub, changes)


def add_routes(app: falcon.App, docs, store: TenantSettingsStore, max_body_bytes: int) -> None:
    docs.add_route(app, "/tenant-settings", TenantSettingsResource(store, max_body_bytes))
