"""The kernel's own pieces that are not older top-level modules: features, hooks,
schedules and the core migrations.

The kernel of the workflow service is ``engine``, ``definitions``, ``conditions``,
``cache``, ``matching``, ``templating``, ``models``, ``workflows``, ``ending``, ``db``,
``settings``, ``apiclient``, ``heartbeat``, ``broker`` (the worker's broker, which the
features' actor modules import), the ``steps`` package (the step interface, its
registry and the kinds every feature builds on), the ``web`` package (the core
resources and the helpers the features' resources share), and this package:

* :mod:`.feature`: :class:`~.feature.Feature`, the one object in which a feature
  package declares what it adds (steps, channels, actors, routes, jobs, settings,
  hooks, migrations);
* :mod:`.hooks`: the named lifecycle hooks through which the kernel tells features what
  happened (an execution ended, a step was recorded, ...) and features tell each other;
* :mod:`.schedules`: the scheduler's lock key and cron fire times, which the
  operations feature shows without importing the scheduler;
* :mod:`.migrations`: the core tables' migrations (versions 1-99).

May import: ``shared`` and the other kernel modules. Never a feature package, nor
``workflow_service.features`` (the list of features), nor an entry point. The
``[tool.importlinter]`` contracts in pyproject.toml enforce it.
"""
