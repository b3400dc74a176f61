"""The worker's broker: imported first by :mod:`workflow_service.worker`.

Reads the settings once, binds the models to the database, builds the shared broker
(with a database connection per message) and makes it Dramatiq's global broker, so the
actor modules imported after it register on it. Part of the kernel: the features'
actor modules import it, so it knows no feature (the worker installs them).
"""

from __future__ import annotations

import dramatiq

from shared.broker import create_broker
from shared.db import DramatiqConnectionScope
from workflow_service.db import database as database_proxy
from workflow_service.db import init_database
from workflow_service.settings import WorkflowSettings

settings = WorkflowSettings.from_env()
db = init_database(settings.pooled_database_url)
broker = create_broker(
    settings,
    extra_middleware=[DramatiqConnectionScope(database_proxy)],
    heartbeat_timeout_ms=settings.worker_heartbeat_timeout_ms,
)
if settings.broker_maintenance_chance:
    # How often (per million Redis commands) a worker requeues dead workers' messages.
    broker.maintenance_chance = settings.broker_maintenance_chance
dramatiq.set_broker(broker)
