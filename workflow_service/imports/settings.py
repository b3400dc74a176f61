"""Import and export settings, read from the environment by the service settings."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import ConfigError, Env

DEFAULT_MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class BatchSettings:
    #: The largest import file accepted (``IMPORT_MAX_BYTES``); larger ones are a 413.
    import_max_bytes: int = DEFAULT_MAX_BYTES
    #: The most data rows an import file may hold (``IMPORT_MAX_ROWS``).
    import_max_rows: int = 10_000
    #: How long one import message works before it hands the rest to a continuation
    #: message (``IMPORT_CHUNK_SECONDS``); well under governance.import's 2-minute limit.
    import_chunk_s: float = 60.0

    @classmethod
    def from_env(cls, env: Env) -> BatchSettings:
        settings = cls(
            import_max_bytes=env.int("IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES),
            import_max_rows=env.int("IMPORT_MAX_ROWS", 10_000),
            import_chunk_s=env.float("IMPORT_CHUNK_SECONDS", 60.0),
        )
        if settings.import_max_bytes < 1 or settings.import_max_rows < 1:
            raise ConfigError("IMPORT_MAX_BYTES and IMPORT_MAX_ROWS must be at least 1")
        if not 1 <= settings.import_chunk_s <= 100:
            raise ConfigError("IMPORT_CHUNK_SECONDS must be between 1 and 100")
        return settings
