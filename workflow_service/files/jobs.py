"""Batch jobs as HTTP answers, kept importable here: they live in
:mod:`workflow_service.storage.jobs`."""

from workflow_service.storage.jobs import accepted, job_message, job_ref, new_job_id, submit

__all__ = ["accepted", "job_message", "job_ref", "new_job_id", "submit"]
