"""What both `ingest/` and the analytics package `warehouse/` stand on, importing neither.

    layout    every path of a warehouse: PATH, PATH.data/..., PATH.lock, PATH.wal, PATH.tmp
    storage   the writer lock and DuckDB connections
    catalog   the base tables as views over the stored Parquet (sql/schema.sql, sql/views.sql)
    errors    every error class meant for people
    markup    the six markup strings of the Memento format
    faults    named crash points for the reliability tests

The layers (tests/test_layers.py checks them): cli.py -> ingest | warehouse | mementos_sample
-> foundation; nothing imports cli.py, and ingest and warehouse never import each other.
"""

import os

# OpenBLAS (numpy's, and scipy's, which datasketch imports) starts a thread per core when it loads; under an
# address-space cap (`ulimit -v`) a thread it cannot start leaves it spinning in blas_thread_init forever, and
# nothing here multiplies matrices. Set before anything imports numpy: every entry point imports foundation
# first (cli.py, ingest workers), and spawned workers inherit the environment.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
