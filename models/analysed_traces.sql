/*
name: analysed_traces
version: 1
kind: view
grain: [trace_id]
description: >
  The traces the analytic models cover: those whose response parsed cleanly
  (status = 'ok'). This is the one place where flagged and unsegmented traces are
  left out; they are counted apart (compression_breakdown.flagged_traces and
  unsegmented_traces); flagged ones are listed with their issue codes in
  outlier_traces, unsegmented ones with their checks in unsegmented_traces. To analyse flagged traces too, edit the WHERE
  clause: every model downstream rebuilds.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  source_row: 0-based row of the trace in its input split
  domain: the trace's domain; `(unknown)` when missing
  source: the trace's source dataset; `(unknown)` when missing
  difficulty: the trace's difficulty, as text; `(unknown)` when missing
  n_blocks: blocks the parser found in the response
  content_hash: "xxh3-128 of problem and response: equal hashes are exact duplicates"
audits:
  - not_null: [trace_id, domain, n_blocks]
  - accepted_range: {column: n_blocks, min: 1}
*/
SELECT trace_id, dataset, source_row, domain, source, difficulty, n_blocks, content_hash
FROM all_traces
WHERE status = 'ok'
