"""``/executions``: what ran, with each step's attempts; cancelling one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import falcon

from shared.events import ENTITY_TYPES
from shared.http import Param, bad_parameter, parse_choice, parse_limit, route
from workflow_service.engine import Engine
from workflow_service.models import Execution, ExecutionStatus, StepRun, Workflow
from workflow_service.web.common import (
    READ_ROLES,
    WRITE_ROLES,
    after_cursor,
    next_cursor,
    not_found,
    page_cursor,
    uuid_param,
)
from workflow_service.web.schemas import ExecutionListOut, ExecutionOut
from workflow_service.web.serialize import execution_body

ID = Param("execution_id", "path", "Execution id", {"type": "string", "format": "uuid"})


def _get(tenant: str, execution_id: str) -> Execution:
    execution_id = uuid_param(execution_id, "execution_id")
    execution = Execution.get_or_none(
        (Execution.id == execution_id) & (Execution.tenant_id == tenant)
    )
    if execution is None:
        raise not_found("execution", execution_id)
    return execution


def _workflow_names(executions: list[Execution]) -> dict[str, str]:
    """Names of the executions' workflows, in one query."""
    ids = {e.workflow_id for e in executions}
    if not ids:
        return {}
    query = Workflow.select(Workflow.id, Workflow.name).where(Workflow.id.in_(ids))
    # peewee's stubs type the rows of .tuples() as models.
    return dict(cast(Iterable[tuple[str, str]], query.tuples()))


def _steps(execution: Execution) -> list[StepRun]:
    return list(
        StepRun.select()
        .where(StepRun.execution == execution.id)
        .order_by(StepRun.position, StepRun.attempt)
    )


class ExecutionCollection:
    docs = {
        "GET": route(
            "Executions of the tenant, newest first",
            response=ExecutionListOut,
            params=(
                Param("workflow_id"),
                Param("entity_type"),
                Param("entity_id"),
                Param("status", description=", ".join(ExecutionStatus.ALL)),
                Param("limit", schema={"type": "integer"}),
                Param("cursor"),
            ),
            errors=(400,),
            roles=(*READ_ROLES, "admin"),
        )
    }

    def on_get(self, req, resp):
        principal = req.context.principal
        limit = parse_limit(req)
        query = Execution.select().where(Execution.tenant_id == principal.tenant)
        workflow_id = req.get_param("workflow_id")
        if workflow_id:
            query = query.where(Execution.workflow == uuid_param(workflow_id, "workflow_id"))
        entity_type = parse_choice(req, "entity_type", ENTITY_TYPES)
        if entity_type:
            query = query.where(Execution.entity_type == entity_type)
        entity_id = req.get_param("entity_id")
        if entity_id:
            if len(entity_id) > 64:
                raise bad_parameter("entity_id", "'entity_id' is at most 64 characters.")
            query = query.where(Execution.entity_id == entity_id)
        status = parse_choice(req, "status", ExecutionStatus.ALL)
        if status:
            query = query.where(Execution.status == status)
        rows = list(after_cursor(query, Execution, page_cursor(req)).limit(limit))
        names = _workflow_names(rows)
        return {
            "items": [
                execution_body(e, reader=principal, workflow_name=names.get(e.workflow_id))
                for e in rows
            ],
            "next_cursor": next_cursor(rows, limit),
        }


class ExecutionItem:
    docs = {
        "GET": route(
            "An execution with its step log (every attempt of every step)",
            response=ExecutionOut,
            params=(ID,),
            errors=(400, 404),
            roles=(*READ_ROLES, "admin"),
        )
    }

    def on_get(self, req, resp, execution_id):
        principal = req.context.principal
        execution = _get(principal.tenant, execution_id)
        name = _workflow_names([execution]).get(execution.workflow_id)
        return execution_body(execution, _steps(execution), principal, name)


class ExecutionCancel:
    docs = {
        "POST": route(
            "Cancel an execution: its running step finishes, no further step starts, "
            "its open approvals are cancelled",
            response=ExecutionOut,
            params=(ID,),
            errors=(400, 404, 409),
            roles=(*WRITE_ROLES, "admin"),
        )
    }

    def __init__(self, engine: Engine):
        self.engine = engine

    def on_post(self, req, resp, execution_id):
        principal = req.context.principal
        execution = _get(principal.tenant, execution_id)
        if not self.engine.cancel(execution.id):
            raise falcon.HTTPConflict(
                title="Execution already finished",
                description=f"The execution is {Execution.get_by_id(execution.id).status}; "
                "only pending, running or waiting executions can be cancelled.",
            )
        # Its open approvals were closed by the execution_ended hook (after the cancel's
        # own commit); housekeeping closes them if that was cut short.
        execution = Execution.get_by_id(execution.id)
        name = _workflow_names([execution]).get(execution.workflow_id)
        return execution_body(execution, _steps(execution), workflow_name=name)


def add_execution_routes(app, docs, engine: Engine) -> None:
    docs.add_route(app, "/executions", ExecutionCollection())
    docs.add_route(app, "/executions/{execution_id}", ExecutionItem())
    docs.add_route(app, "/executions/{execution_id}/cancel", ExecutionCancel(engine))
