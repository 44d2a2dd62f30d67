"""The run files' row groups: batches gathered in order, bounded by rows and by bytes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mementos.foundation.catalog import store_schemas
from mementos.ingest.flatten import BatchOrigin, flatten_default
from mementos.ingest.parquet_writer import RunFileWriter
from mementos.sample import write_sample

BATCH = 10  # rows per batch handed to the writer, as a worker hands it its batches


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> list[pa.Table]:
    """23 flattened batches of the sample's 230 default traces (the last one 10 rows too), in order."""
    tmp = tmp_path_factory.mktemp("writer_sample")
    write_sample(tmp / "sample", 230, seed=5)
    source = pq.read_table(sorted((tmp / "sample" / "data").glob("*.parquet")))
    schemas = store_schemas()
    return [flatten_default(source.slice(first, BATCH), BatchOrigin("d", "r1", "f", first), schemas, False)
            .tables["traces"] for first in range(0, source.num_rows, BATCH)]


def write(tmp_path, batches, **bounds) -> pq.ParquetFile:
    writer = RunFileWriter(tmp_path, "traces", "d", "r1", "default-0", batches[0].schema, **bounds)
    for batch in batches:
        writer.write(batch)
    writer.close()
    return pq.ParquetFile(writer.path)


def row_groups(pf: pq.ParquetFile) -> list[int]:
    return [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]


def test_230_rows_in_batches_of_10_make_row_groups_of_50(tmp_path, batches):
    pf = write(tmp_path, batches, max_rows=50, max_bytes=1 << 40)
    assert row_groups(pf) == [50, 50, 50, 50, 30]


def test_row_groups_hold_consecutive_source_rows_with_statistics(tmp_path, batches):
    pf = write(tmp_path, batches, max_rows=50, max_bytes=1 << 40)
    col = pf.schema_arrow.get_field_index("source_row")
    stats = [pf.metadata.row_group(i).column(col).statistics for i in range(pf.metadata.num_row_groups)]
    assert [(s.min, s.max) for s in stats] == [(0, 49), (50, 99), (100, 149), (150, 199), (200, 229)]


def test_no_row_group_exceeds_the_byte_bound(tmp_path, batches):
    written = pa.concat_tables(batches)
    bound = 4 * max(written.slice(i, 1).nbytes for i in range(written.num_rows))  # a few rows, < one batch
    pf = write(tmp_path, batches, max_rows=50, max_bytes=bound)
    starts = [0]
    for n in row_groups(pf):
        starts.append(starts[-1] + n)
    sizes = [written.slice(a, b - a).nbytes for a, b in zip(starts, starts[1:])]
    assert max(sizes) <= bound


def test_rows_split_by_the_byte_bound_come_back_in_order(tmp_path, batches):
    bound = 4 * max(t.slice(i, 1).nbytes for t in batches for i in range(t.num_rows))
    pf = write(tmp_path, batches, max_rows=50, max_bytes=bound)
    assert pf.read(columns=["source_row"]).column(0).to_pylist() == list(range(230))


def test_a_row_larger_than_the_byte_bound_is_a_row_group_of_its_own(tmp_path, batches):
    pf = write(tmp_path, batches[:2], max_rows=50, max_bytes=1)
    assert row_groups(pf) == [1] * 20

