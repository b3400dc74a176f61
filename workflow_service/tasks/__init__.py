"""Tasks and assignments: the ``create_task`` and ``assign`` steps and ``/tasks``.

A task is a to-do for one person or for everyone with a role (rows in the kernel's
``Task`` model); ``assign`` makes one person an entity's assignee through the api and
tells them on ``notify``'s channels. Declared in :mod:`.feature`.

May import: the kernel (``steps``, ``models``, ``web`` helpers, ``kernel.hooks``) and
``shared``; no other feature (the audit trail hears of tasks through the
``task_recorded`` hook).
"""
