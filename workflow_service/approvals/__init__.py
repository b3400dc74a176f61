"""Approvals: the ``require_approval`` step, decisions, and their HTTP API."""
