"""The in-app inbox: ``/notifications``, what ``notify``'s ``in_app`` channel wrote.

The channel itself is the kernel's (:mod:`workflow_service.steps.notify`: every feature
that tells people uses it); this feature is how people read and mark what it wrote.
Declared in :mod:`.feature`.

May import: the kernel and ``shared``; no other feature.
"""
