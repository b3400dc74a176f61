"""Bulk imports of policies from CSV or XLSX files (``/imports``, governance.import).

The request checks the file (type, size, columns, formulas, row limit) and keeps its
rows; the ``import_entities`` actor writes them through the api one row per call, with
an idempotency key per row, in chunks that re-enqueue themselves within the queue's
time limit.

A feature, declared in :mod:`.feature`. May import: the kernel (``engine``, ``models``,
``steps``, ``web`` helpers, ``kernel.hooks``...) and ``shared``, the file store, and the
export writers (an import's report is written like an export).
"""
