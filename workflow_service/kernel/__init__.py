"""The kernel's own pieces that are not older top-level modules: features and hooks.

The kernel of the workflow service is ``engine``, ``definitions``, ``conditions``,
``cache``, ``matching``, ``templating``, ``models``, ``workflows``, ``ending``, ``db``,
``settings``, ``apiclient``, ``heartbeat``, the ``steps`` package (the step interface,
its registry and the built-in kinds every feature builds on), the ``web`` package's
core resources and helpers (``web.app`` aside), and this package:

* :mod:`.feature`: :class:`~.feature.Feature`, the one object in which a feature
  package declares what it adds (steps, channels, actors, routes, jobs, settings,
  hooks, migrations);
* :mod:`.hooks`: the named lifecycle hooks through which the kernel tells features what
  happened (an execution ended, a step was recorded, ...) and features tell each other.

May import: ``shared`` and the other kernel modules. Never a feature package, nor
``workflow_service.features`` (the list of features), nor an entry point. The
``[tool.importlinter]`` contracts in pyproject.toml enforce it.
"""
