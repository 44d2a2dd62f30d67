/*
name: export_base
version: 3
kind: incremental
grain: [trace_id]
batch_traces: 20000
description: >
  One row per ingested trace (ok or flagged): what the export_* views pick
  their examples from. The labels as all_traces gives them ('(unknown)' for a
  missing domain, source or difficulty), status and issue codes (exports leave
  flagged traces out unless asked), content_hash (exact duplicates are written
  once), response_chars, and where the parser found each segment in the
  response: the non-empty blocks and mementos as lists of {block_idx, start,
  end} in block order, and the answer's start and end (NULL without an answer segment);
  0-based, end-exclusive character offsets, so response[start:end] is the
  segment's text. No text is copied here: `mementos export` reads problem and
  response from traces and cuts the segments out of the response, so the table
  holds only integers and labels. A table built a batch of traces at a time
  (version 3; a view before): every export reads it instead of grouping every
  segment again. Token sums are cl100k as counted at
  ingest, NULL when ingested with --no-tokens. README.md (Export) describes the kinds.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  source_row: 0-based row of the trace in its input split
  run_id: the ingest run that wrote the trace
  domain: the trace's domain; `(unknown)` when missing
  source: the trace's source dataset; `(unknown)` when missing
  difficulty: the trace's difficulty, as text; `(unknown)` when missing
  status: "`ok`, or `flagged` when the response breaks the memento grammar"
  issue_codes: the trace's distinct parse issue codes (default config), sorted, comma-separated; NULL when none
  content_hash: "xxh3-128 of problem and response: equal hashes are exact duplicates"
  n_blocks: blocks the parser found in the response
  response_chars: characters of the response
  blocks: the non-empty blocks as a list of `{block_idx, start, end}` character offsets in the response, in block order
  mementos: the non-empty mementos as a list of `{block_idx, start, end}` character offsets in the response, in block order
  answer_start: where the answer starts in the response; NULL without an answer
  answer_end: where the answer ends (exclusive)
  block_tokens: tokens of all blocks; NULL when a segment has no count
  memento_tokens: tokens of all mementos; NULL when a segment has no count
  answer_tokens: tokens of the answer; NULL when a segment has no count
audits:
  - not_null: [dataset, source_row, domain, source, difficulty, status, content_hash, response_chars]
  - accepted_values: {column: status, values: [ok, flagged, unsegmented]}
  - custom:
      name: ok_traces_have_every_pair_and_an_answer
      sql: >
        SELECT trace_id, n_blocks, len(blocks), len(mementos), answer_start FROM {this}
        WHERE status = 'ok' AND (n_blocks < 1 OR len(blocks) <> n_blocks OR len(mementos) <> n_blocks
                                 OR answer_start IS NULL)
*/
WITH per_trace AS (
    -- token sums are NULL when any segment of the trace has no count (ingested with --no-tokens)
    SELECT
        trace_id,
        list({'block_idx': block_idx, 'start': char_start, 'end': char_end} ORDER BY block_idx)
            FILTER (WHERE kind = 'block' AND n_chars > 0) AS blocks,
        list({'block_idx': block_idx, 'start': char_start, 'end': char_end} ORDER BY block_idx)
            FILTER (WHERE kind = 'summary' AND n_chars > 0) AS mementos,
        min(char_start) FILTER (WHERE kind = 'answer') AS answer_start,
        min(char_end) FILTER (WHERE kind = 'answer') AS answer_end,
        CASE WHEN count(n_tokens) = count(*)
             THEN CAST(coalesce(sum(n_tokens) FILTER (WHERE kind = 'block'), 0) AS BIGINT) END AS block_tokens,
        CASE WHEN count(n_tokens) = count(*)
             THEN CAST(coalesce(sum(n_tokens) FILTER (WHERE kind = 'summary'), 0) AS BIGINT) END AS memento_tokens,
        CASE WHEN count(n_tokens) = count(*)
             THEN CAST(coalesce(sum(n_tokens) FILTER (WHERE kind = 'answer'), 0) AS BIGINT) END AS answer_tokens
    FROM segments
    GROUP BY trace_id
),
issues AS (
    SELECT trace_id, string_agg(DISTINCT code, ',' ORDER BY code) AS issue_codes
    FROM parse_issues
    WHERE config = 'default'
    GROUP BY trace_id
)
SELECT
    t.trace_id,
    t.dataset,
    t.source_row,
    t.run_id,
    coalesce(t.domain, '(unknown)') AS domain,
    coalesce(t.source, '(unknown)') AS source,
    coalesce(t.difficulty, '(unknown)') AS difficulty,
    t.status,
    i.issue_codes,
    t.content_hash,
    t.n_blocks,
    t.response_chars,
    coalesce(p.blocks, []) AS blocks,
    coalesce(p.mementos, []) AS mementos,
    p.answer_start,
    p.answer_end,
    p.block_tokens,
    p.memento_tokens,
    p.answer_tokens
FROM traces AS t
LEFT JOIN per_trace AS p ON p.trace_id = t.trace_id
LEFT JOIN issues AS i ON i.trace_id = t.trace_id
