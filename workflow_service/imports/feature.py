"""The imports feature's declaration."""

from workflow_service.imports import resources
from workflow_service.imports.migrations import MIGRATIONS
from workflow_service.kernel.feature import Feature

FEATURE = Feature(
    name="imports",
    actor_modules=("workflow_service.imports.actors",),
    routes=(resources.register,),
    settings=("batch",),
    migrations=tuple(MIGRATIONS),
)
