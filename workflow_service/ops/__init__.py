"""Operations views of the queues: depths, dead letters, job records, retry and metrics.

``broker_state`` reads Dramatiq's own Redis layout (it is the source of truth for what
is waiting, in flight and dead); ``service`` combines it with the job-status records;
``resources`` exposes both to operators (every tenant) and to each tenant's admins (their
own tenant's jobs); ``metrics`` turns them into Prometheus series collected on scrape.

A feature, declared in :mod:`.feature`. May import: the kernel (``kernel.schedules``
for the scheduler's lock and fire times, not the scheduler itself) and ``shared``, the
console's static files, and the notification deliveries (an operator reopens a failed
one).
"""

from workflow_service.ops.metrics import QueueCollector
from workflow_service.ops.resources import add_ops_routes
from workflow_service.ops.routes import register_ops
from workflow_service.ops.service import JobOps

__all__ = ["JobOps", "QueueCollector", "add_ops_routes", "register_ops"]
