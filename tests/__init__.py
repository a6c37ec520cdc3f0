"""The test suite: one folder per package of ``otel_lifecycle``, shared fixtures in ``conftest.py``.

A package, like every folder under it, so that test modules are imported by
their full name (``tests.core.test_export``) and files of the same name in two
folders do not clash.
"""
