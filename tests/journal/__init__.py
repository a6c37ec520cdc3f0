"""Tests of ``otel_lifecycle._journal``: the crash journal in-process and across a SIGKILL."""
