/*
name: all_traces
version: 1
kind: view
grain: [trace_id]
description: >
  Every ingested trace, ok, unsegmented or flagged, with the labels the breakdowns group by
  (a missing domain, source or difficulty becomes '(unknown)') and, for flagged
  traces, the distinct parse issue codes of the default config.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  source_row: 0-based row of the trace in its input split
  domain: the trace's domain; `(unknown)` when missing
  source: the trace's source dataset; `(unknown)` when missing
  difficulty: the trace's difficulty, as text; `(unknown)` when missing
  status: "`ok`; `unsegmented` for reasoning without memento markup; `flagged` when the response breaks the memento grammar"
  n_blocks: blocks the parser found in the response
  n_issues: parse issues of the trace
  issue_codes: the trace's distinct parse issue codes (default config), sorted, comma-separated; NULL when none
  content_hash: "xxh3-128 of problem and response: equal hashes are exact duplicates"
  response_chars: characters of the response
audits:
  - not_null: [trace_id, dataset, domain, source, difficulty, status, content_hash]
  - accepted_values: {column: status, values: [ok, flagged, unsegmented]}
  - custom:
      name: flagged_traces_have_issue_codes
      sql: SELECT * FROM {this} WHERE (status = 'flagged') <> (issue_codes IS NOT NULL)
*/
WITH issue_codes AS (
    SELECT trace_id, string_agg(DISTINCT code, ',' ORDER BY code) AS issue_codes
    FROM parse_issues
    WHERE config = 'default'
    GROUP BY trace_id
)
SELECT
    t.trace_id,
    t.dataset,
    t.source_row,
    coalesce(t.domain, '(unknown)') AS domain,
    coalesce(t.source, '(unknown)') AS source,
    coalesce(t.difficulty, '(unknown)') AS difficulty,
    t.status,
    t.n_blocks,
    t.n_issues,
    i.issue_codes,
    t.content_hash,
    t.response_chars
FROM traces AS t
LEFT JOIN issue_codes AS i ON i.trace_id = t.trace_id
