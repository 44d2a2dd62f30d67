"""mementos warehouse from Python.

    import mementos
    con = mementos.connect("om.duckdb")      # read-only, over the last published snapshot
    con.sql("SELECT domain, count(*) FROM traces GROUP BY ALL").show()

The connection works from any working directory and never waits for a writer: an
ingest or build that runs meanwhile publishes a new snapshot, which the next
`connect` sees (warehouse.md, "Snapshots").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mementos.foundation.errors import WarehouseError

if TYPE_CHECKING:
    import duckdb

__all__ = ["connect", "WarehouseError"]


def connect(db: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection to the warehouse at `db` (its DuckDB file), over the snapshot
    published when it opens; the base views, the models and `ingest_runs` are all there. Raises
    WarehouseError when `db` is no warehouse or its files are not all there."""
    # imported here: every `import mementos.<part>` (the CLI's start-up too) runs this file first
    from mementos.foundation import published, snapshots, storage

    db = snapshots.resolve(db)
    con = storage.connect(db, read_only=True)
    try:
        published.verify(con, db)
    except BaseException:
        con.close()
        raise
    return con
