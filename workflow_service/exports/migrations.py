"""Export migrations (versions 220-224): none yet. An export keeps no rows of its own;
its job record and its file (in the file store) say everything about it."""

from __future__ import annotations

from shared.db import Migration

MIGRATIONS: list[Migration] = []
