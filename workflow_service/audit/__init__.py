"""The audit trail: an append-only, hash-chained log per tenant of what happened.

Sources call :func:`workflow_service.audit.record.record` inside the transaction of
their change (a transactional outbox: one small insert into ``audit_pending``); the
``append_audit`` actor on governance.audit moves pending rows into the chain
(:mod:`.chain`) under a per-tenant lock. See the README's "Audit trail" section.
"""
