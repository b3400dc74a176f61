"""The reports feature's declaration."""

from workflow_service.kernel.feature import Feature
from workflow_service.reports import resources
from workflow_service.reports.steps import GenerateReport

FEATURE = Feature(
    name="reports",
    steps=(GenerateReport,),
    actor_modules=("workflow_service.reports.actors",),
    routes=(resources.register,),
)
