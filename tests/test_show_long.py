"""`mementos show` on long traces takes linear time and bounded memory.

It took 1.6 / 4.0 / 10.8 s for 1 / 2 / 4 MB responses and did not finish in 300 s on 50 MB: the
segments view re-read the whole response for every segment, and rich wraps one long Text in time
quadratic in its lines. Now the trace view cuts texts from the response itself, and `show` prints a
bounded amount: a long text's head and tail, at most 200 pairs, tables of 20 rows printed one by one.
"""

from __future__ import annotations

import duckdb
import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from conftest import memento, row, write_jsonl
from mementos.ingest.pipeline import run_ingest
from mementos.foundation import storage
from mementos.warehouse import show
from mementos.warehouse.trace_view import trace_view


def ingest(tmp_path, response) -> str:
    src = write_jsonl(tmp_path / "long.jsonl", [row(response, problem="a long one")])
    db = tmp_path / "w.duckdb"
    run_ingest(str(src), db, name="long", workers=0, progress=False, with_tokens=False)
    return db


def printed(db) -> str:
    console = Console(record=True, width=100, highlight=False, color_system=None)
    show.show(db, "long:0", console)
    return console.export_text()


def test_the_trace_view_cuts_the_same_texts_as_the_segments_view(tmp_path):
    db = ingest(tmp_path, memento([("é 😀 first block", "m1 ✓"), ("second\nblock ß", "m2")], answer="ünïcode 42"))
    view = trace_view(db, "long:0")
    with storage.connect(db) as con:
        expected = con.execute("SELECT kind, block_idx, text FROM segments ORDER BY block_idx NULLS LAST, kind").fetchall()
    got = [(k, p.block_idx, t) for p in view.pairs for k, t in (("block", p.block), ("summary", p.memento))]
    assert got + [("answer", None, view.answer)] == expected
    assert [t for _, _, t in expected] == ["é 😀 first block", "m1 ✓", "second\nblock ß", "m2", "ünïcode 42"]


def test_a_300000_character_block_is_shown_as_its_head_and_tail(tmp_path):
    block = "".join(f"line {i:06d}\n" for i in range(25_000)) + "the end"  # 300,007 characters, 25,001 lines
    db = ingest(tmp_path, memento([(block, "short memo")]))
    [table] = [p for p in show.parts(trace_view(db, "long:0")) if isinstance(p, Table)]
    assert table.columns[1]._cells[0].plain == (
        block[:8_000] + " ⟦… 290,007 characters not shown; `mementos sql` prints them …⟧ " + block[-2_000:])
    out = printed(db)
    assert "line 000000" in out and "line 024999" in out and "the end" in out and "line 012345" not in out
    assert len(out) < 100_000, len(out)  # 10,000 characters of the block in 1,000 lines of 100


def test_a_trace_of_450_pairs_prints_200_in_tables_of_20_rows(tmp_path):
    db = ingest(tmp_path, memento([(f"block number {i}", f"memo {i}") for i in range(450)]))
    parts = show.parts(trace_view(db, "long:0"))
    tables = [p for p in parts if isinstance(p, Table)]
    marks = [p.plain for p in parts if isinstance(p, Text) and "pairs not shown" in p.plain]
    assert [t.row_count for t in tables] == [20] * 10
    assert [t.show_header for t in tables] == [True] + [False] * 9
    assert marks == ["⟦… 250 pairs not shown (blocks 160 to 409); `mementos sql` prints them …⟧"]
    out = printed(db)
    assert "block number 159" in out and "block number 410" in out and "block number 160" not in out
