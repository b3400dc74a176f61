"""The policy service: policies with a lifecycle, and trigger events that are never lost."""
