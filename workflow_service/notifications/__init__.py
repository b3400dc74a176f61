"""Notification delivery: e-mail and signed webhooks on governance.notification.

A feature, declared in :mod:`.feature`: the ``email`` and ``webhook`` channels of the
kernel's ``notify`` step, the ``webhook`` step, the deliveries (claimed, retried,
parked and re-sent) and their HTTP API. The ``in_app`` channel is the kernel's.

May import: the kernel (``engine``, ``models``, ``steps``, ``web`` helpers,
``kernel.hooks``...) and ``shared``, and the user directory (e-mail addresses). It tells
the audit trail through the ``delivery_recorded`` hook.
"""
