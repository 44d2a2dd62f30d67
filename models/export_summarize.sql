/*
name: export_summarize
version: 1
kind: view
grain: [trace_id, block_idx]
description: >
  Export kind `summarize`, one example per block that has its memento: the
  user turn is a fixed instruction, a blank line and the block's text; the
  assistant turn is the memento's text; for training a memento writer. The
  instruction (exactly): 'Write the memento of this reasoning block: a short
  summary that keeps every result, value and decision needed to continue the
  reasoning without the block.' n_tokens = block + memento (the instruction
  not counted). Flagged traces contribute the pairs the parser recovered.
audits:
  - not_null: [dataset, source_row, domain, status, content_hash, messages, block_idx]
  - accepted_range: {column: block_idx, min: 0}
*/
WITH pairs AS (
    SELECT
        b.trace_id,
        b.block_idx,
        b.text AS block,
        s.text AS memento,
        CAST(b.n_tokens + s.n_tokens AS BIGINT) AS n_tokens
    FROM segments AS b
    JOIN segments AS s ON s.trace_id = b.trace_id AND s.block_idx = b.block_idx
    WHERE b.kind = 'block' AND s.kind = 'summary' AND b.n_chars > 0 AND s.n_chars > 0
)
SELECT
    a.trace_id,
    p.block_idx,
    a.dataset,
    a.source_row,
    a.domain,
    a.source,
    a.difficulty,
    a.status,
    a.content_hash,
    t.problem,
    [
        {'role': 'user', 'content': 'Write the memento of this reasoning block: a short summary that keeps every '
                                    || 'result, value and decision needed to continue the reasoning without the block.'
                                    || chr(10) || chr(10) || p.block},
        {'role': 'assistant', 'content': p.memento}
    ] AS messages,
    p.n_tokens
FROM all_traces AS a
JOIN traces AS t ON t.trace_id = a.trace_id
JOIN pairs AS p ON p.trace_id = a.trace_id
