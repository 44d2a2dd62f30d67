"""Plain-text summaries printed at the end of long commands."""

from __future__ import annotations


def format_ingest_summary(s) -> str:
    mb = s.input_bytes / 1e6
    rate = s.rows_read / s.seconds if s.seconds else 0.0
    lines = [
        f"ingested {s.dataset!r} into {s.db} (run {s.run_id}, config {s.config})",
        f"  shards      {_shards(s)}",
        f"  rows read   {s.rows_read:>10,}   ({s.default_rows:,} default, {s.full_rows:,} full)",
        f"  ok          {s.rows_ok:>10,}",
        f"  unsegmented {s.rows_unsegmented:>10,}   (reasoning without memento markup)",
        f"  flagged     {s.rows_flagged:>10,}" + _per_config(s.flagged_by_config),
    ]
    for code, count in sorted(s.issue_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {code:<26} {count:>8,}")
    lines.append(f"  rejected    {s.rows_rejected:>10,}   (rows that became no trace: see rejected_rows)")
    for reason, count in sorted(s.rejected_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {reason:<26} {count:>8,}")
    lines.append(f"  seconds     {s.seconds:>10.1f}   ({rate:,.0f} traces/s, {mb / s.seconds if s.seconds else 0:,.1f} MB/s of response text)")
    return "\n".join(lines)


def _shards(s) -> str:
    """What the run did to the dataset's source files: '3 unchanged, 1 added (2,300 traces), 0 replaced, 0 removed'."""
    text = (f"{s.shards_unchanged:,} unchanged, {s.shards_added:,} added ({s.rows_added:,} rows), "
            f"{s.shards_replaced:,} replaced ({s.rows_replaced:,} rows), {s.shards_removed:,} removed "
            f"({s.rows_removed:,} rows)")
    why = getattr(s, "why_full", "")
    return f"{text}; every file read: {why}" if why else text


def _per_config(flagged: dict | None) -> str:
    """Flagged rows per config: the default config's are traces (what the report counts), the full config's rows."""
    if not flagged:
        return ""
    parts = [f"{flagged.get('default', 0):,} default traces"] if "default" in flagged else []
    if "full" in flagged:
        parts.append(f"{flagged['full']:,} full rows")
    return f"   ({', '.join(parts)})"
