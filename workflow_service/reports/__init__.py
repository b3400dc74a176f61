"""Reports: ``POST /reports`` and the ``generate_report`` step.

A report is built from the api (policies, read page by page with the service token)
or from this service's approval tables, rendered as CSV, XLSX or PDF into the file
store, and its file's descriptor is the job's result. The ``generate_report`` actor
runs on ``governance.reporting``.
"""
