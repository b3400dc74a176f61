"""Worker entry point: ``dramatiq workflow_service.worker --queues governance.policy``.

Imports the broker module first (it sets Dramatiq's global broker), installs the
features and imports the actor modules each declares (:mod:`workflow_service.features`);
a worker started with ``--queues`` consumes only those queues. Refuses to start on a
database that is not migrated.
"""

from workflow_service import broker  # noqa: I001 - first: sets the global broker

import importlib  # noqa: E402

from shared.db import check_current, is_database_unavailable  # noqa: E402
from shared.health import HeartbeatMiddleware  # noqa: E402
from shared.logs import quiet_expected_errors  # noqa: E402
from workflow_service import features  # noqa: E402
from workflow_service.migrations import all_migrations  # noqa: E402

for feature in features.install(broker.settings.plugins):
    for module in feature.actor_modules:
        importlib.import_module(module)

# Liveness: a key in Redis this host's probe (`python -m workflow_service health`) reads.
broker.broker.add_middleware(HeartbeatMiddleware())

check_current(broker.db, all_migrations(broker.settings.plugins))
broker.db.close()

# Retried failures that are part of normal operation (an unreachable database, a mail
# server or webhook receiver failing for now) are one log line; tracebacks at DEBUG.
quiet_expected_errors(lambda exc: is_database_unavailable(exc) or features.is_expected_error(exc))
