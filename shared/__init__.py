"""The contract both services import: settings, queue catalog, events, broker, job status.

Nothing in this package holds business logic; it is what the api and the workflow
service must agree on to talk to each other.
"""
