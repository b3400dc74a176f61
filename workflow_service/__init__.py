"""The workflow service: workflow definitions, trigger dispatch, durable executions.

Processes: the admin web (``gunicorn workflow_service.wsgi:app``), Dramatiq workers
(``dramatiq workflow_service.worker --queues ...``) and the scheduler
(``python -m workflow_service scheduler``). It never imports ``api_service``: events
arrive as Dramatiq messages, and steps reach the api over HTTP with a service token.
"""
