"""The workflow service: workflow definitions, trigger dispatch, durable executions.

Three layers (the README's "Architecture"; pyproject.toml's import contracts hold them):
the kernel (engine, definitions, steps, models, ``web``'s core resources, ``kernel``'s
features and hooks), the feature packages (tasks, inbox, notifications, approvals,
users, ops, audit, files, reports, exports, imports), each declaring itself in a
``FEATURE``, and the entry points built from :mod:`workflow_service.features`.

Processes: the admin web (``gunicorn workflow_service.wsgi:app``), Dramatiq workers
(``dramatiq workflow_service.worker --queues ...``) and the scheduler
(``python -m workflow_service scheduler``). It never imports ``api_service``: events
arrive as Dramatiq messages, and steps reach the api over HTTP with a service token.
"""
