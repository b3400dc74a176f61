"""``/workflows``: definitions, their versions, status changes and manual runs."""

from __future__ import annotations

import falcon

from shared.events import ENTITY_TYPES
from shared.http import (
    ApiError,
    Param,
    bad_parameter,
    parse_body,
    parse_choice,
    parse_limit,
    read_json,
    route,
)
from workflow_service.apiclient import ApiUnavailable, load_entity
from workflow_service.definitions import (
    TRIGGERS,
    InvalidDefinition,
    WorkflowDefinition,
    unknown_user_errors,
    validate_definition,
)
from workflow_service.engine import Engine
from workflow_service.models import Workflow, WorkflowStatus, WorkflowVersion
from workflow_service.steps import Directory
from workflow_service.steps.webhook_urls import for_reader
from workflow_service.web.common import (
    READ_ROLES,
    WRITE_ROLES,
    after_cursor,
    invalid_definition,
    next_cursor,
    not_found,
    page_cursor,
    uuid_param,
)
from workflow_service.web.schemas import (
    RunAccepted,
    RunRequest,
    WorkflowCreate,
    WorkflowListOut,
    WorkflowOut,
    WorkflowPatch,
    WorkflowVersionListOut,
)
from workflow_service.web.serialize import execution_body, job_ref, workflow_body
from workflow_service.workflows import (
    StaleVersion,
    WorkflowArchived,
    WorkflowInUse,
    WorkflowNotFound,
    WorkflowStore,
)

ID = Param("workflow_id", "path", "Workflow id", {"type": "string", "format": "uuid"})
WRITE = (*WRITE_ROLES, "admin")
READ = (*READ_ROLES, "admin")
#: Paging of the workflow and version lists (newest first).
PAGE = (
    Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200}),
    Param("cursor", description="next_cursor of the previous page"),
)


#: Step options only a tenant's admin may set: they loosen separation of duties.
ADMIN_ONLY_OPTIONS = ("allow_self_approval",)


def _admin_only_options(value) -> list[str]:
    """The admin-only options ``value`` (steps, nested at any depth) sets to true."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ADMIN_ONLY_OPTIONS and item is True:
                found.append(key)
            else:
                found.extend(_admin_only_options(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_admin_only_options(item))
    return found


def check_admin_only_options(principal, data) -> None:
    """403 naming the option when someone other than an admin sets one of them."""
    found = sorted(set(_admin_only_options(data)))
    if found and "admin" not in principal.roles:
        raise falcon.HTTPForbidden(
            title="Admin only option",
            description=f"Only an admin may set {', '.join(found)}: true.",
        )


def check_people(definition: WorkflowDefinition, tenant: str, directory: Directory) -> None:
    """422 naming each step option that names a user the tenant's directory lacks."""
    errors = unknown_user_errors(definition, tenant, directory)
    if errors:
        raise invalid_definition(InvalidDefinition(errors))


IF_MATCH = Param("If-Match", "header", "The version the change is based on, as an ETag.")


def if_match_version(req) -> int | None:
    """The version an If-Match header names; None without one (or with ``*``)."""
    raw = req.get_header("If-Match")
    if not raw or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise bad_parameter(
            "If-Match", f"If-Match must be a workflow version such as '\"3\"', got {raw!r}."
        )
    return int(value)


def expected_version(req, body_version: int | None) -> int:
    """The version a PATCH is based on: ``version`` in the body or If-Match (428
    without either, 412 when they differ)."""
    header = if_match_version(req)
    if header is not None and body_version is not None and header != body_version:
        raise ApiError(
            falcon.HTTP_412,
            "Stale version",
            f"If-Match names version {header} but the body names version {body_version}.",
        )
    version = body_version if body_version is not None else header
    if version is None:
        raise ApiError(
            falcon.HTTP_428,
            "Version required",
            "Send the version this change is based on, as an If-Match header or as "
            "'version' in the body, so a concurrent edit is never overwritten.",
        )
    return version


def _get(store: WorkflowStore, tenant: str, workflow_id: str):
    workflow_id = uuid_param(workflow_id, "workflow_id")
    try:
        return store.get(tenant, workflow_id)
    except WorkflowNotFound:
        raise not_found("workflow", workflow_id) from None


class WorkflowCollection:
    docs = {
        "GET": route(
            "List the tenant's workflows",
            response=WorkflowListOut,
            params=(
                Param("status", description="active, inactive or archived"),
                Param("entity_type"),
                Param("trigger"),
                *PAGE,
            ),
            errors=(400,),
            roles=READ,
        ),
        "POST": route(
            "Create a workflow (version 1); allow_self_approval: true needs an admin (403)",
            request=WorkflowCreate,
            response=WorkflowOut,
            status=201,
            roles=WRITE,
            # Read by on_post: an invalid definition is its 422 "Invalid workflow".
            parses_body=False,
        ),
    }

    def __init__(self, store: WorkflowStore, directory: Directory, max_body_bytes: int):
        self.store = store
        self.directory = directory
        self.max_body_bytes = max_body_bytes

    def on_get(self, req, resp):
        principal = req.context.principal
        filters = {
            "status": parse_choice(req, "status", WorkflowStatus.ALL),
            "entity_type": parse_choice(req, "entity_type", ENTITY_TYPES),
            "trigger": parse_choice(req, "trigger", TRIGGERS),
        }
        limit = parse_limit(req)
        query = self.store.list(principal.tenant, **filters)
        rows = list(after_cursor(query, Workflow, page_cursor(req)).limit(limit))
        resp.media = {
            "items": [workflow_body(w, principal) for w in rows],
            "next_cursor": next_cursor(rows, limit),
        }

    def on_post(self, req, resp):
        principal = req.context.principal
        data = read_json(req, self.max_body_bytes)
        if not isinstance(data, dict):
            raise invalid_definition(
                InvalidDefinition([{"field": "body", "message": "must be a JSON object"}])
            )
        data = dict(data)
        status = data.pop("status", WorkflowStatus.INACTIVE)
        if status not in (WorkflowStatus.ACTIVE, WorkflowStatus.INACTIVE):
            raise invalid_definition(
                InvalidDefinition([{"field": "status", "message": "must be active or inactive"}])
            )
        try:
            definition = validate_definition(data)
        except InvalidDefinition as exc:
            raise invalid_definition(exc) from None
        check_admin_only_options(principal, data)
        check_people(definition, principal.tenant, self.directory)
        workflow = self.store.create(principal.tenant, principal.sub, definition, status)
        resp.status = falcon.HTTP_201
        resp.location = f"/workflows/{workflow.id}"
        resp.media = workflow_body(workflow)


class WorkflowItem:
    docs = {
        "GET": route("A workflow", response=WorkflowOut, params=(ID,), errors=(404,), roles=READ),
        "PATCH": route(
            "Edit a workflow; the result is a new version; needs If-Match or 'version' "
            "(missing: 428, stale: 412); allow_self_approval: true needs an admin (403)",
            request=WorkflowPatch,
            response=WorkflowOut,
            params=(ID, IF_MATCH),
            errors=(404, 412, 428),
            roles=WRITE,
            # Read after the workflow is found (404 first) and with the changes kept raw.
            parses_body=False,
        ),
        "DELETE": route(
            "Delete a workflow that never ran (archive one that did)",
            status=204,
            params=(ID,),
            errors=(404, 409),
            roles=WRITE,
        ),
    }

    def __init__(self, store: WorkflowStore, directory: Directory, max_body_bytes: int):
        self.store = store
        self.directory = directory
        self.max_body_bytes = max_body_bytes

    def on_get(self, req, resp, workflow_id):
        principal = req.context.principal
        resp.media = workflow_body(_get(self.store, principal.tenant, workflow_id), principal)

    def on_patch(self, req, resp, workflow_id):
        principal = req.context.principal
        current = _get(self.store, principal.tenant, workflow_id)
        data = read_json(req, self.max_body_bytes)
        patch = parse_body(WorkflowPatch, data)
        version = expected_version(req, patch.version)
        changes = {k: v for k, v in data.items() if k != "version"}
        check_admin_only_options(principal, changes)
        try:
            check_people(
                validate_definition({**current.definition(), **changes}),
                principal.tenant,
                self.directory,
            )
            workflow = self.store.update(
                principal.tenant, current.id, principal.sub, changes, version
            )
        except WorkflowArchived:
            raise falcon.HTTPConflict(
                title="Workflow archived",
                description="An archived workflow cannot be edited; create a new one.",
            ) from None
        except StaleVersion as exc:
            raise ApiError(
                falcon.HTTP_412,
                "Stale version",
                f"The workflow is at version {exc.current}, not {exc.expected}; "
                "reload it and apply your change again.",
                current_version=exc.current,
            ) from None
        except InvalidDefinition as exc:
            raise invalid_definition(exc) from None
        except WorkflowNotFound:
            raise not_found("workflow", current.id) from None
        resp.media = workflow_body(workflow)

    def on_delete(self, req, resp, workflow_id):
        principal = req.context.principal
        workflow = _get(self.store, principal.tenant, workflow_id)
        try:
            self.store.delete(principal.tenant, workflow.id)
        except WorkflowInUse:
            raise falcon.HTTPConflict(
                title="Workflow has executions",
                description="A workflow that ran keeps its history; archive it instead "
                f"(POST /workflows/{workflow.id}/archive).",
            ) from None
        resp.status = falcon.HTTP_204


class WorkflowStatusAction:
    """``POST /workflows/{id}/activate`` (``deactivate``, ``archive``)."""

    def __init__(self, store: WorkflowStore, status: str):
        self.store = store
        self.status = status
        self.docs = {
            "POST": route(
                f"Set the workflow's status to {status} (a new version)",
                response=WorkflowOut,
                params=(ID,),
                errors=(404, 409),
                roles=WRITE,
            )
        }

    def on_post(self, req, resp, workflow_id):
        principal = req.context.principal
        workflow = _get(self.store, principal.tenant, workflow_id)
        if workflow.status == WorkflowStatus.ARCHIVED and self.status != WorkflowStatus.ARCHIVED:
            raise falcon.HTTPConflict(
                title="Workflow archived",
                description="An archived workflow cannot be reactivated; create a new one.",
            )
        workflow = self.store.set_status(principal.tenant, workflow.id, principal.sub, self.status)
        resp.media = workflow_body(workflow)


class WorkflowVersions:
    docs = {
        "GET": route(
            "Every version of a workflow, newest first",
            response=WorkflowVersionListOut,
            params=(ID, *PAGE),
            errors=(400, 404),
            roles=READ,
        )
    }

    def __init__(self, store: WorkflowStore):
        self.store = store

    def on_get(self, req, resp, workflow_id):
        principal = req.context.principal
        workflow = _get(self.store, principal.tenant, workflow_id)
        limit = parse_limit(req)
        query = self.store.versions(workflow)
        rows = list(after_cursor(query, WorkflowVersion, page_cursor(req)).limit(limit))
        resp.media = {
            "next_cursor": next_cursor(rows, limit),
            "items": [
                {
                    "version": v.version,
                    "status": v.status,
                    "definition": for_reader(principal, v.definition),
                    "created_by": v.created_by,
                    "created_at": v.created_at.isoformat() + "Z",
                }
                for v in rows
            ],
        }


class WorkflowRun:
    docs = {
        "POST": route(
            "Run the workflow now for one entity, loaded from the api (404 when it has "
            "no such entity); answers with the job to follow",
            request=RunRequest,
            response=RunAccepted,
            status=202,
            params=(ID,),
            errors=(404, 409, 503),
            roles=WRITE,
            # Read after the workflow is found: an unknown workflow is a 404 whatever
            # the body.
            parses_body=False,
        )
    }

    def __init__(self, store: WorkflowStore, engine: Engine, max_body_bytes: int):
        self.store = store
        self.engine = engine
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp, workflow_id):
        principal = req.context.principal
        workflow = _get(self.store, principal.tenant, workflow_id)
        body = parse_body(RunRequest, read_json(req, self.max_body_bytes))
        if workflow.status == WorkflowStatus.ARCHIVED:
            raise falcon.HTTPConflict(
                title="Workflow archived", description="An archived workflow cannot run."
            )
        try:
            entity = load_entity(
                self.engine.api, workflow.entity_type, body.entity_id, principal.tenant
            )
        except ApiUnavailable as exc:
            raise ApiError(
                falcon.HTTP_503,
                "Api unavailable",
                f"The {workflow.entity_type} could not be read from the api ({exc}); try again.",
            ) from None
        if entity is None:
            raise not_found(workflow.entity_type, body.entity_id)
        # The entity's own fields are the api's, so the run's owner, creator and
        # submitter (and separation of duties) are the real ones.
        data = {**body.data, **entity}
        execution = self.engine.manual_run(workflow, body.entity_id, data, principal.sub)
        resp.status = falcon.HTTP_202
        resp.location = f"/executions/{execution.id}"
        resp.media = {
            "execution_id": execution.id,
            "status": execution.status,
            "job": job_ref(execution.job_id),
            "execution": execution_body(execution),
        }


def add_workflow_routes(app, docs, store: WorkflowStore, engine: Engine, limit: int) -> None:
    directory = engine.directory
    docs.add_route(app, "/workflows", WorkflowCollection(store, directory, limit))
    docs.add_route(app, "/workflows/{workflow_id}", WorkflowItem(store, directory, limit))
    docs.add_route(app, "/workflows/{workflow_id}/versions", WorkflowVersions(store))
    docs.add_route(app, "/workflows/{workflow_id}/run", WorkflowRun(store, engine, limit))
    for action, status in (
        ("activate", WorkflowStatus.ACTIVE),
        ("deactivate", WorkflowStatus.INACTIVE),
        ("archive", WorkflowStatus.ARCHIVED),
    ):
        docs.add_route(
            app, f"/workflows/{{workflow_id}}/{action}", WorkflowStatusAction(store, status)
        )
