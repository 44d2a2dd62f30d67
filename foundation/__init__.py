"""What both `ingest/` and the analytics package `warehouse/` stand on, importing neither.

    layout      every path of a warehouse (PATH, PATH.wal, PATH.data/...) and which of them it owns
    storage     the writer lock and DuckDB connections
    catalog     the base tables as views over the stored Parquet (sql/schema.sql, sql/views.sql),
                the committed ingest runs and their rows
    snapshots   the one writer: stage a copy of the catalog, publish it, reclaim what no reader needs
    published   what a published snapshot names, and the check that it is whole
    durable     files written whole (exclusive temp file, fsync, rename) and fsynced folders
    formatting  numbers and sizes as every command and page prints them
    disk        free space, and a full disk as one line
    resources   the SQL, models and templates shipped inside the package
    tokens      the token counter (cl100k_base)
    errors      every error class meant for people, and the messages several modules raise
    markup      the six markup strings of the Memento format
    faults      named crash points for the reliability tests

The layers (tests/test_layers.py checks them): cli.py -> ingest | warehouse | mementos_sample
-> foundation; nothing imports cli.py, and ingest and warehouse never import each other.
"""

import os

# OpenBLAS (numpy's, and scipy's, which datasketch imports) starts a thread per core when it loads; under an
# address-space cap (`ulimit -v`) a thread it cannot start leaves it spinning in blas_thread_init forever, and
# nothing here multiplies matrices. Set before anything imports numpy: every entry point imports foundation
# first (cli.py, ingest workers), and spawned workers inherit the environment.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
