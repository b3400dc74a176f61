"""The user directory's declaration."""

from workflow_service.kernel.feature import Feature
from workflow_service.users import resources
from workflow_service.users.directory import UserDirectory
from workflow_service.users.migrations import MIGRATIONS

FEATURE = Feature(
    name="users",
    routes=(resources.register,),
    hooks={"user_directory": UserDirectory},
    migrations=tuple(MIGRATIONS),
)
