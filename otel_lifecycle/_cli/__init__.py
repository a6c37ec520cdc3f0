"""The ``otel-lifecycle`` command: doctor, recover, and the demo (app, results, report, receiver).

May import everything; nothing imports it but ``__main__`` and the console script.
"""
