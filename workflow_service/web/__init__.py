"""The kernel's HTTP layer of the admin API (Falcon): ``/workflows`` and
``/executions`` (:mod:`.workflows`, :mod:`.executions`), and the roles, errors, paging,
schemas and serialisation the features' resources share (:mod:`.common`,
:mod:`.schemas`, :mod:`.serialize`).

Part of the kernel: may import the other kernel modules and ``shared``, never a feature.
The app that adds the features' routes is :mod:`workflow_service.app`.
"""
