"""Approvals: the ``require_approval`` step (and the ``approval_*`` kinds built on
``change_status`` and ``notify``), decisions, housekeeping jobs, and their HTTP API.

A feature, declared in :mod:`.feature`: it closes an execution's open approvals on the
kernel's ``execution_ended`` hook (whatever path cancelled it) and closes approvals on
an entity's deletion, archiving or change before dispatch (``entity_event``).

May import: the kernel (``engine``, ``models``, ``steps``, ``web`` helpers,
``kernel.hooks``...) and ``shared``; of other features only what the import contract of
pyproject.toml still lists (the user directory to resolve approvers, the notification
deliveries to e-mail them). It tells the audit trail through kernel hooks.
"""
