"""Notification delivery: in-app inbox, e-mail and signed webhooks on governance.notification."""
