"""The workflow service's admin HTTP API (Falcon)."""
