"""Schema migrations of the workflow service (``python -m workflow_service migrate``).

Versions 1-99 are the core's (:mod:`workflow_service.kernel.migrations`); each feature
keeps its own list (versions 100-299) in its package's ``migrations`` module and
declares it in its ``FEATURE``. :func:`all_migrations` collects them from the list of
features and refuses overlaps.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.db import Migration
from workflow_service.features import all_features


def all_migrations(plugins: Iterable[str] = ()) -> list[Migration]:
    """The core's migrations and those every feature declares (``plugins``: the
    ``WORKFLOW_PLUGINS`` modules, whose features may declare some too)."""
    migrations = [m for feature in all_features(plugins) for m in feature.migrations]
    versions = [m.version for m in migrations]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise RuntimeError(f"migration versions used twice: {duplicates}")
    return migrations
