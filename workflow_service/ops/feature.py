"""The operations feature's declaration: queues, jobs, schedules and the console."""

from workflow_service.kernel.feature import Feature
from workflow_service.ops.routes import register_ops

FEATURE = Feature(name="ops", routes=(register_ops,))
