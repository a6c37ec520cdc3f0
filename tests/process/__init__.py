"""Tests of ``otel_lifecycle._process``: signals, exits, fork and real servers, in subprocesses."""
