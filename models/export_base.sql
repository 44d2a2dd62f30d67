/*
name: export_base
version: 1
kind: view
grain: [trace_id]
description: >
  One row per ingested trace (ok or flagged) with what every export kind needs:
  the labels of all_traces, status and issue codes (exports leave flagged traces
  out unless asked), content_hash (exact duplicates are written once), the
  problem, the original response, the answer segment's text, and the cl100k
  tokens of the trace's blocks, mementos and answer as counted at ingest (NULL
  when ingested with --no-tokens). The export_* views build their messages on
  it; docs/export.md defines every kind.
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, n_block_segments, n_memento_segments]
  - accepted_values: {column: status, values: [ok, flagged]}
  - custom:
      name: ok_traces_have_pairs_and_an_answer
      sql: >
        SELECT trace_id FROM {this}
        WHERE status = 'ok' AND (n_block_segments < 1 OR n_block_segments <> n_memento_segments OR answer IS NULL)
*/
WITH parts AS (
    -- token sums are NULL when any segment of the trace has no count (ingested with --no-tokens)
    SELECT
        trace_id,
        count(*) FILTER (WHERE kind = 'block') AS n_block_segments,
        count(*) FILTER (WHERE kind = 'summary') AS n_memento_segments,
        CASE WHEN count(n_tokens) = count(*)
             THEN CAST(coalesce(sum(n_tokens) FILTER (WHERE kind = 'block'), 0) AS BIGINT) END AS block_tokens,
        CASE WHEN count(n_tokens) = count(*)
             THEN CAST(coalesce(sum(n_tokens) FILTER (WHERE kind = 'summary'), 0) AS BIGINT) END AS memento_tokens,
        CASE WHEN count(n_tokens) = count(*)
             THEN CAST(coalesce(sum(n_tokens) FILTER (WHERE kind = 'answer'), 0) AS BIGINT) END AS answer_tokens
    FROM segments
    GROUP BY trace_id
),
answers AS (
    SELECT trace_id, text AS answer
    FROM segments
    WHERE kind = 'answer'
)
SELECT
    a.trace_id,
    a.dataset,
    a.source_row,
    t.run_id,
    a.domain,
    a.source,
    a.difficulty,
    a.status,
    a.issue_codes,
    a.content_hash,
    t.problem,
    t.response,
    ans.answer,
    coalesce(p.n_block_segments, 0) AS n_block_segments,
    coalesce(p.n_memento_segments, 0) AS n_memento_segments,
    p.block_tokens,
    p.memento_tokens,
    p.answer_tokens
FROM all_traces AS a
JOIN traces AS t ON t.trace_id = a.trace_id
LEFT JOIN parts AS p ON p.trace_id = a.trace_id
LEFT JOIN answers AS ans ON ans.trace_id = a.trace_id
