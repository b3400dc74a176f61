"""Bulk exports (``POST /exports``, governance.export): a tenant's entities, as the api
lists them with the caller's filters, written page by page to a CSV, XLSX or JSON file
in the file store.

A feature, declared in :mod:`.feature`. May import: the kernel (``engine``, ``models``,
``steps``, ``web`` helpers, ``kernel.hooks``...) and ``shared``, and the file store.
"""
