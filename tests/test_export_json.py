"""export_json (warehouse/export_json.py): the export's own JSON encoder, for rows too long for DuckDB's."""

from __future__ import annotations


def test_json_lines_writes_what_duckdb_to_json_writes():
    """json_lines' lines equal DuckDB's to_json over the export's schemas: every character that is escaped,
    non-ASCII text (with and without the control characters that have no short form), NULLs in every
    position, empty lists and numbers."""
    import duckdb
    import pyarrow as pa

    from mementos.warehouse.export import json_lines
    from mementos.warehouse.export.records import output_schema

    every = "".join(chr(c) for c in range(0x250)) + "\u2028\u2029\ufeff\U0001f600\U0010ffff \\\" \\u0041 /"
    # the same without the control characters written \u00XX: json_lines escapes such a text another way
    short_forms = "".join(c for c in every if not (ord(c) < 0x20 and c not in "\b\t\n\f\r"))
    spans = [{"kind": "block", "block_idx": 0, "start": 0, "end": 5}, {"kind": "answer", "block_idx": None,
                                                                        "start": 6, "end": 2**40}]
    con = duckdb.connect()
    for kind in ("memento", "summarize"):
        schema = output_schema(kind)
        rows = []
        for i, text in enumerate([every, short_forms, "", None, "plain"]):
            record = {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": every}],
                      "trace_id": f"t:{i}", "block_idx": i if i % 2 else None, "n_tokens": None if i == 1 else 7,
                      "spans": spans if i == 0 else [] if i == 1 else None}
            rows.append({f.name: record.get(f.name, text) for f in schema})
        table = pa.Table.from_pylist(rows, schema)
        con.register("rows", table)
        fields = ", ".join(f"'{f.name}': \"{f.name}\"" for f in schema)
        expected = "".join(line + "\n" for (line,) in con.execute(f"SELECT to_json({{{fields}}}) FROM rows").fetchall())
        assert b"".join(json_lines.lines(table)).decode("utf-8") == expected, kind
