"""Unit tests: pure logic, no Redis, no database, no other process (see tests/README.md)."""
