"""The user directory: who people are (JWT ``sub``), their e-mail, roles and tenant.

A feature, declared in :mod:`.feature`: ``/users``, the ``users import`` command, and
the directory the engine expands roles with (its ``user_directory`` provider). May
import: the kernel (``engine``, ``models``, ``steps``, ``web`` helpers,
``kernel.hooks``...) and ``shared``; no other feature (user changes reach the audit
trail through the ``user_recorded`` hook).
"""
