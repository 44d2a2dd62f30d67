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
