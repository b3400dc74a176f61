"""The audit trail: an append-only, hash-chained log per tenant of what happened.

A feature (:mod:`.feature`) that listens: the kernel and the other features fire hooks
(``execution_recorded``, ``step_recorded``, ``approval_recorded``... see
:mod:`workflow_service.kernel.hooks`) inside the transaction of their change, and this
feature's subscribers (:mod:`.record`) write one small pending row each (a
transactional outbox: one insert into ``audit_pending``); the ``append_audit`` actor on
governance.audit moves pending rows into the chain (:mod:`.chain`) under a per-tenant
lock. See the README's "Audit trail" section.

May import: the kernel (``engine``, ``models``, ``steps``, ``web`` helpers,
``kernel.hooks``...) and ``shared``; the file store (packages are stored files) and the
approval tables (packages include approvals), as the import contract lists. Nothing
imports it but the list of features.
"""
