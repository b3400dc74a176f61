"""The api service's tables. Models are bound through a proxy so settings and tests
choose the database (``database.initialize(db)``)."""

from __future__ import annotations

import json

import peewee

from shared.db import utcnow

database = peewee.DatabaseProxy()


class JSONTextField(peewee.TextField):
    """JSON stored as text: the same column type on SQLite and PostgreSQL."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"), default=str)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Policy(BaseModel):
    id = peewee.UUIDField(primary_key=True)
    tenant = peewee.CharField(max_length=64)
    title = peewee.CharField(max_length=200)
    policy_type = peewee.CharField(max_length=64)
    content = peewee.TextField(default="")
    owner = peewee.CharField(max_length=128)
    status = peewee.CharField(max_length=20, default="draft")
    version = peewee.IntegerField(default=1)
    review_frequency = peewee.CharField(max_length=20, null=True)
    next_review_date = peewee.DateField(null=True)
    effective_date = peewee.DateField(null=True)
    tags = JSONTextField(default=list)
    created_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_by = peewee.CharField(max_length=128)
    updated_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)
    #: Who last sent it to review (the person a workflow acted for, if one did); they
    #: may not approve it. Added by migration 3.
    submitted_by = peewee.CharField(max_length=128, null=True)

    class Meta:
        indexes = (
            (("tenant", "created_at", "id"), False),
            (("tenant", "status"), False),
            (("tenant", "policy_type"), False),
            (("tenant", "owner"), False),
            # The deadline scan looks policies up by review date (migration 2).
            (("next_review_date",), False),
        )


class PolicyVersion(BaseModel):
    """The policy as it was after each change (the audit trail of its content)."""

    id = peewee.BigAutoField()
    policy = peewee.ForeignKeyField(Policy, backref="versions", on_delete="CASCADE")
    version = peewee.IntegerField()
    change = peewee.CharField(max_length=32)  # the event type that recorded it
    snapshot = JSONTextField()
    changed_by = peewee.CharField(max_length=128)
    changed_at = peewee.DateTimeField(default=utcnow)
    #: The service that made the change for ``changed_by`` (the workflow service moving
    #: a policy for the people who approved it); None when they made it themselves.
    via = peewee.CharField(max_length=128, null=True)

    class Meta:
        indexes = ((("policy", "version"), True),)


class Outbox(BaseModel):
    """Events written with the change that caused them, published after commit.

    ``claimed_until`` is a lease: the request that wrote a row holds it while it
    publishes, a relay holds the rows it claimed; nobody else publishes a row under a
    live lease, so a row is published once unless its holder dies mid-publish.
    """

    id = peewee.BigAutoField()
    event_id = peewee.CharField(max_length=36, unique=True)
    tenant = peewee.CharField(max_length=64)
    queue_name = peewee.CharField(max_length=64)
    payload = JSONTextField()
    created_at = peewee.DateTimeField(default=utcnow)
    claimed_until = peewee.DateTimeField(null=True)
    claimed_by = peewee.CharField(max_length=36, null=True)
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(null=True)
    sent_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("sent_at", "id"), False),)


class IdempotencyRecord(BaseModel):
    """The first answer to a request sent with an ``Idempotency-Key``, for replays.

    Keys belong to a caller (``sub``) of a tenant: another caller's use of the same key
    is a different request, never a replay of this answer.
    """

    id = peewee.BigAutoField()
    tenant = peewee.CharField(max_length=64)
    #: Added by migration 3 ('' on rows written before it).
    caller = peewee.CharField(max_length=128, default="")
    key = peewee.CharField(max_length=200)
    request_hash = peewee.CharField(max_length=64)
    status = peewee.IntegerField()
    body = JSONTextField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tenant", "caller", "key"), True),)


class DeadlineNotice(BaseModel):
    """A deadline event written for an entity: one per entity, kind and date (a policy's
    review date, an assessment's due date, an evidence's valid_until). Migration 7
    (before it: ``deadline_notice``, policies only)."""

    entity_type = peewee.CharField(max_length=20)
    entity_id = peewee.UUIDField()
    #: deadline_approaching, deadline_passed, due_approaching, overdue, expiring_<days>,
    #: expired.
    kind = peewee.CharField(max_length=32)
    deadline = peewee.DateField()
    event_id = peewee.CharField(max_length=36)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "entity_deadline_notice"
        primary_key = peewee.CompositeKey("entity_type", "entity_id", "kind", "deadline")


class TenantSettings(BaseModel):
    """A tenant's settings, changed by its admin; a tenant without a row has the
    defaults."""

    tenant = peewee.CharField(max_length=64, primary_key=True)
    #: Only the workflow service may move the tenant's policies to ``approved``.
    approval_requires_workflow = peewee.BooleanField(default=False)
    updated_by = peewee.CharField(max_length=128)
    updated_at = peewee.DateTimeField(default=utcnow)


class PolicyRefusal(BaseModel):
    """A refused move of a policy (who, for whom, when, why): the refusals of
    separation of duties and of roles are kept, the policy itself is unchanged."""

    id = peewee.BigAutoField()
    tenant = peewee.CharField(max_length=64)
    policy = peewee.UUIDField()
    from_status = peewee.CharField(max_length=20)
    to_status = peewee.CharField(max_length=20)
    refused_by = peewee.CharField(max_length=128)
    #: The people the workflow service acted for (its deciders), comma-separated.
    on_behalf_of = peewee.CharField(max_length=2000, null=True)
    reason = peewee.TextField()
    refused_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("policy", "refused_at"), False),)


class Assessment(BaseModel):
    """An assessment of how well policies work (migration 5)."""

    id = peewee.UUIDField(primary_key=True)
    tenant = peewee.CharField(max_length=64)
    title = peewee.CharField(max_length=200)
    scope = peewee.TextField(default="")
    #: Ids (strings) of policies of the same tenant it assesses.
    policies = JSONTextField(default=list)
    assessor = peewee.CharField(max_length=128)
    due_date = peewee.DateField(null=True)
    findings = peewee.TextField(default="")
    #: None until decided: effective, partially_effective or ineffective.
    result = peewee.CharField(max_length=32, null=True)
    status = peewee.CharField(max_length=20, default="planned")
    version = peewee.IntegerField(default=1)
    created_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_by = peewee.CharField(max_length=128)
    updated_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)
    #: Who sent it to under_review; they may not complete it.
    submitted_by = peewee.CharField(max_length=128, null=True)

    class Meta:
        indexes = (
            (("tenant", "created_at", "id"), False),
            (("tenant", "status"), False),
            (("tenant", "assessor"), False),
            (("tenant", "due_date"), False),
            # The deadline scan, across tenants (migration 7).
            (("due_date",), False),
        )


class AssessmentVersion(BaseModel):
    """The assessment as it was after each change."""

    id = peewee.BigAutoField()
    assessment = peewee.ForeignKeyField(Assessment, backref="versions", on_delete="CASCADE")
    version = peewee.IntegerField()
    change = peewee.CharField(max_length=32)
    snapshot = JSONTextField()
    changed_by = peewee.CharField(max_length=128)
    changed_at = peewee.DateTimeField(default=utcnow)
    via = peewee.CharField(max_length=128, null=True)

    class Meta:
        indexes = ((("assessment", "version"), True),)


class Evidence(BaseModel):
    """Evidence that a control works: a document, screenshot, config, log or link, with
    an optional stored file (migration 5)."""

    id = peewee.UUIDField(primary_key=True)
    tenant = peewee.CharField(max_length=64)
    title = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    kind = peewee.CharField(max_length=20)
    url = peewee.CharField(max_length=2000, null=True)
    #: Ids (strings) of the tenant's policies and assessments it supports.
    policies = JSONTextField(default=list)
    assessments = JSONTextField(default=list)
    collector = peewee.CharField(max_length=128)
    collected_at = peewee.DateTimeField(null=True)
    valid_until = peewee.DateField(null=True)
    status = peewee.CharField(max_length=20, default="draft")
    version = peewee.IntegerField(default=1)
    file_name = peewee.CharField(max_length=255, null=True)
    content_type = peewee.CharField(max_length=100, null=True)
    size = peewee.BigIntegerField(null=True)
    sha256 = peewee.CharField(max_length=64, null=True)
    #: Where the file is, relative to EVIDENCE_DIR.
    file_path = peewee.CharField(max_length=500, null=True)
    created_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_by = peewee.CharField(max_length=128)
    updated_at = peewee.DateTimeField(default=utcnow)
    deleted_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "evidence"
        indexes = (
            (("tenant", "created_at", "id"), False),
            (("tenant", "status"), False),
            (("tenant", "collector"), False),
            (("tenant", "kind"), False),
            (("tenant", "valid_until"), False),
            # The deadline scan, across tenants (migration 7).
            (("status", "valid_until"), False),
        )


class EvidenceVersion(BaseModel):
    """The evidence as it was after each change."""

    id = peewee.BigAutoField()
    evidence = peewee.ForeignKeyField(Evidence, backref="versions", on_delete="CASCADE")
    version = peewee.IntegerField()
    change = peewee.CharField(max_length=32)
    snapshot = JSONTextField()
    changed_by = peewee.CharField(max_length=128)
    changed_at = peewee.DateTimeField(default=utcnow)
    via = peewee.CharField(max_length=128, null=True)

    class Meta:
        indexes = ((("evidence", "version"), True),)


class EntityRefusal(BaseModel):
    """A refused move of an assessment or evidence (like :class:`PolicyRefusal`)."""

    id = peewee.BigAutoField()
    tenant = peewee.CharField(max_length=64)
    entity_type = peewee.CharField(max_length=20)
    entity_id = peewee.UUIDField()
    from_status = peewee.CharField(max_length=20)
    to_status = peewee.CharField(max_length=20)
    refused_by = peewee.CharField(max_length=128)
    on_behalf_of = peewee.CharField(max_length=2000, null=True)
    reason = peewee.TextField()
    refused_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("entity_type", "entity_id", "refused_at"), False),)


#: The tables of migration 1 (later tables come with the migration that adds them).
MODELS = (Policy, PolicyVersion, Outbox, IdempotencyRecord)
