"""Every error meant for people, in one module that imports nothing heavy.

`cli.py` imports them at start-up, and so does every ingest worker (spawned
workers import the main module): keeping DuckDB out of here keeps it out of them.
The CLI prints any WarehouseError as one line: what, where, what to do next.
"""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line for a one-line error: its first line, else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class WarehouseError(Exception):
    """An error meant for the person at the terminal: what, where, what to do."""


def no_warehouse(db) -> WarehouseError:
    """Nothing at all at `db`, where a command reads a warehouse."""
    return WarehouseError(f"no warehouse at {db}; create one with `mementos ingest SOURCE --db {db}` first")


def not_a_warehouse(db, why: str, todo: str = "run `mementos ingest` first") -> WarehouseError:
    """Something at `db` that is no mementos warehouse: the file, why not ('an empty file', a DuckDB file
    without the base tables...), and what to do (a writer says that it wrote nothing)."""
    return WarehouseError(f"{db} is not a mementos warehouse ({why}); {todo}")


class WarehouseBusy(WarehouseError):
    """Another process holds the writer lock or DuckDB's file lock."""


# ingest
class SourceError(WarehouseError):
    """A source that cannot be read (ingest/sources.py)."""


class WorkerDied(WarehouseError):
    """An ingest worker process ended without finishing its batch (ingest/worker_pool.py)."""


class ReconciliationError(WarehouseError):
    """What the workers wrote is not what the views show; nothing was committed (ingest/loader.py)."""


# models and their engines
class ModelError(WarehouseError):
    """A model file that cannot be used as written; the message names the file."""


class CycleError(ModelError):
    """Models that depend on each other in a circle (warehouse/project.py)."""


class TranspileError(ModelError):
    """A model (or one of its audits) that cannot be written as Spark SQL; names the model and the function."""

    def __init__(self, model: str, where: str, function: str | None, detail: str):
        self.model, self.function = model, function
        super().__init__(f"{where}: model {model} does not transpile to Spark SQL: {detail}")


# the sample generator
class SampleExistsError(WarehouseError, FileExistsError):
    """The output directory holds something the sample generator should not replace."""
