"""Reports: ``POST /reports`` and the ``generate_report`` step.

A report is built from the api (policies, read page by page with the service token)
or from this service's approval tables, rendered as CSV, XLSX or PDF into the file
store, and its file's descriptor is the job's result. The ``generate_report`` actor
runs on ``governance.reporting``.

A feature, declared in :mod:`.feature`. May import: the kernel (``engine``, ``models``,
``steps``, ``web`` helpers, ``kernel.hooks``...) and ``shared``, the file store, and the
approval tables (the turnaround report).
"""
