"""Data contracts of the tracker: events, unit registry, rulebooks, ledger and status.

Only pydantic and the standard library are used here, so the pure engine can depend on it.
"""
