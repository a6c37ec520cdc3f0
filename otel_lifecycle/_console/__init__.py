"""The development console: a compact tree exporter, and the tree drawing it shares with the demo.

May import: ``_core`` (attribute names).
"""
