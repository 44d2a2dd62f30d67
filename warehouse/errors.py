"""The errors meant for people, in a module that imports nothing heavy.

`cli.py` imports them at start-up, and so does every ingest worker (spawned
workers import the main module): keeping DuckDB out of here keeps it out of them.
"""


class WarehouseError(Exception):
    """An error meant for the person at the terminal: what, where, what to do."""


class WarehouseBusy(WarehouseError):
    pass
