"""The tasks feature's declaration."""

from workflow_service.kernel.feature import Feature
from workflow_service.tasks import resources
from workflow_service.tasks.assign import Assign
from workflow_service.tasks.create_task import CreateTask

FEATURE = Feature(
    name="tasks",
    steps=(CreateTask, Assign),
    routes=(resources.register,),
)
