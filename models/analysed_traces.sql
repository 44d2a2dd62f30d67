/*
name: analysed_traces
version: 1
kind: view
grain: [trace_id]
description: >
  The traces the analytic models cover: those whose response parsed cleanly
  (status = 'ok'). This is the one place where flagged traces are left out; they
  are counted apart (compression_breakdown.flagged_traces) and listed with their
  issue codes in outlier_traces. To analyse flagged traces too, edit the WHERE
  clause: every model downstream rebuilds.
audits:
  - not_null: [trace_id, domain, n_blocks]
  - accepted_range: {column: n_blocks, min: 1}
*/
SELECT trace_id, dataset, source_row, domain, source, difficulty, n_blocks, content_hash
FROM all_traces
WHERE status = 'ok'
