"""The entity types the api serves through :mod:`api_service.entities`, and their routes.

Policies keep their own service (its create runs through the group commit, its approval
has tenant settings), but their assignment and the rules it shares with the other
types come from the same description (:data:`POLICY_KIND`).
"""

from __future__ import annotations

from typing import Any

import falcon
import peewee

from api_service import assessments, evidence, lifecycle
from api_service.entities import EntityKind, EntityService
from api_service.entity_resources import Assignment, EntityApi, EvidenceFile, add_entity_routes
from api_service.evidence_files import EvidenceFiles, FileStore
from api_service.models import Policy, PolicyVersion
from api_service.outbox import Clock, OutboxPublisher
from api_service.policies import SNAPSHOT_FIELDS, policy_body
from api_service.schemas import EDITABLE_FIELDS, PolicyOut
from api_service.settings import ApiSettings
from shared.lifecycles import POLICY

POLICY_KIND = EntityKind(
    name="policy",
    model=Policy,
    version_model=PolicyVersion,
    version_fk="policy",
    lifecycle=POLICY,
    initial_status="draft",
    body=policy_body,
    snapshot_fields=SNAPSHOT_FIELDS,
    editable_fields=EDITABLE_FIELDS,
    assignee_field="owner",
    decisions=lifecycle.DECISIONS,
)

ASSESSMENT_API = EntityApi(
    kind=assessments.ASSESSMENT_KIND,
    create=assessments.AssessmentCreate,
    update=assessments.AssessmentUpdate,
    out=assessments.AssessmentOut,
    create_values=assessments.create_values,
    update_values=assessments.update_values,
    filter_docs=assessments.FILTER_DOCS,
    filters=assessments.filters,
)

EVIDENCE_API = EntityApi(
    kind=evidence.EVIDENCE_KIND,
    create=evidence.EvidenceCreate,
    update=evidence.EvidenceUpdate,
    out=evidence.EvidenceOut,
    create_values=evidence.create_values,
    update_values=evidence.update_values,
    filter_docs=evidence.FILTER_DOCS,
    filters=evidence.filters,
)


def add_routes(
    app: falcon.App,
    docs: Any,
    settings: ApiSettings,
    db: peewee.Database,
    outbox: OutboxPublisher,
    clock: Clock,
) -> dict[str, EntityService]:
    """Routes of assessments, evidence (with its file) and the policy assignment;
    answers the services by entity type (the deadline scan expires evidence with
    ``services["evidence"].system_transition``)."""
    limit = settings.max_body_bytes
    services = {
        kind.name: EntityService(kind, db, outbox, clock)
        for kind in (POLICY_KIND, ASSESSMENT_API.kind, EVIDENCE_API.kind)
    }
    add_entity_routes(
        app,
        docs,
        [
            (ASSESSMENT_API, services["assessment"]),
            (EVIDENCE_API, services["evidence"]),
        ],
        limit,
    )
    files = EvidenceFiles(
        services["evidence"], FileStore(settings.evidence_dir), settings.evidence_max_bytes
    )
    docs.add_route(app, "/evidence/{evidence_id}/file", EvidenceFile(files, EVIDENCE_API.out))
    docs.add_route(
        app,
        "/policies/{policy_id}/assignment",
        Assignment(POLICY_KIND, services["policy"], limit, "policy_id", PolicyOut),
    )
    return services
