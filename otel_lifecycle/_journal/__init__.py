"""The crash journal: its SQLite store, the record of a root, the writer thread, recovery.

Given an exporter, it never builds one. May import: ``_core`` and ``_settings``.
"""
