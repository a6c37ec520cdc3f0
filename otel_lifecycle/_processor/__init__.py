"""``LifecycleSpanProcessor``: the core, the journal and the process hooks put together.

May import: ``_core``, ``_journal``, ``_process`` and ``_settings``.
"""
