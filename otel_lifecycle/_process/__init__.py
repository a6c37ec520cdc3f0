"""Process hooks: signals, excepthooks, atexit, fork, and the servers that handle SIGTERM.

They drive processors only through ``_core.active.Lifecycle``. May import:
``_core`` and ``_settings``.
"""
