"""Plain-text summaries printed at the end of long commands."""

from __future__ import annotations


def format_ingest_summary(s) -> str:
    mb = s.input_bytes / 1e6
    rate = s.rows_read / s.seconds if s.seconds else 0.0
    lines = [
        f"ingested {s.dataset!r} into {s.db} (run {s.run_id}, config {s.config})",
        f"  rows read   {s.rows_read:>10,}   ({s.default_rows:,} default, {s.full_rows:,} full)",
        f"  ok          {s.rows_ok:>10,}",
        f"  flagged     {s.rows_flagged:>10,}",
    ]
    for code, count in sorted(s.issue_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {code:<26} {count:>8,}")
    lines.append(f"  seconds     {s.seconds:>10.1f}   ({rate:,.0f} traces/s, {mb / s.seconds if s.seconds else 0:,.1f} MB/s of response text)")
    return "\n".join(lines)
