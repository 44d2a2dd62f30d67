/*
name: inference_simulation
version: 1
kind: table
grain: [trace_id, k]
description: >
  Memento-style inference replayed on each analysed trace, for k = 1, 2, 4, 8:
  only the last k blocks stay in the context in full, earlier blocks survive as
  their mementos. A block is evicted when the memento k blocks after it is
  finished. Step j (one per block) is measured when memento j has just been
  written: context = mementos 0..j + blocks j-k+1..j. The answer is step n,
  written like a block n without a memento: context = all mementos + blocks
  n-k+1..n-1 + the answer. Peak = the largest context over the steps; without
  eviction it is every block + every memento + the answer. Tokens (cl100k_base);
  the prompt and the markup tokens are not counted. warehouse.md (Models) has the
  definition with a worked example.
audits:
  - accepted_values: {column: k, values: [1, 2, 4, 8]}
  - not_null: [n_blocks, blocks_evicted]
  - accepted_range: {column: saved_tokens, min: 0}
  - accepted_range: {column: saved_fraction, min: 0, max: 1}
  - custom:
      name: eviction_never_grows_the_peak
      sql: SELECT * FROM {this} WHERE peak_tokens_with_eviction > peak_tokens_no_eviction
  - custom:
      name: nothing_evicted_means_no_saving
      sql: SELECT * FROM {this} WHERE blocks_evicted = 0 AND saved_tokens <> 0
*/
WITH ks AS (
    SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 4 UNION ALL SELECT 8
),
steps AS (
    -- running totals up to and including block j (= block_idx)
    SELECT
        trace_id,
        block_idx,
        CAST(sum(memento_tokens) OVER (PARTITION BY trace_id ORDER BY block_idx
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS mementos_so_far,
        CAST(sum(block_tokens) OVER (PARTITION BY trace_id ORDER BY block_idx
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS blocks_so_far
    FROM block_pairs
),
block_steps AS (
    -- context at step j: mementos 0..j + blocks j-k+1..j
    -- (blocks_so_far(j) - blocks_so_far(j-k) is the sum of the last k blocks)
    SELECT
        s.trace_id,
        ks.k,
        s.block_idx AS step,
        s.mementos_so_far + s.blocks_so_far - coalesce(e.blocks_so_far, 0) AS context_tokens
    FROM steps AS s
    CROSS JOIN ks
    LEFT JOIN steps AS e ON e.trace_id = s.trace_id AND e.block_idx = s.block_idx - ks.k
),
all_steps AS (
    SELECT trace_id, k, step, context_tokens FROM block_steps
    UNION ALL
    -- the answer (step n): all mementos + blocks n-k+1..n-1 + the answer
    SELECT
        s.trace_id,
        ks.k,
        c.n_blocks AS step,
        s.mementos_so_far + s.blocks_so_far - coalesce(e.blocks_so_far, 0) + c.answer_tokens AS context_tokens
    FROM steps AS s
    JOIN trace_compression AS c ON c.trace_id = s.trace_id AND s.block_idx = c.n_blocks - 1
    CROSS JOIN ks
    LEFT JOIN steps AS e ON e.trace_id = s.trace_id AND e.block_idx = c.n_blocks - ks.k
),
peaks AS (
    SELECT
        trace_id,
        k,
        step,
        context_tokens,
        row_number() OVER (PARTITION BY trace_id, k ORDER BY context_tokens DESC, step) AS rank_in_trace
    FROM all_steps
)
SELECT
    c.trace_id,
    c.dataset,
    c.domain,
    p.k,
    c.n_blocks,
    CASE WHEN c.n_blocks >= p.k THEN c.n_blocks - p.k + 1 ELSE 0 END AS blocks_evicted,
    c.block_tokens + c.memento_tokens + c.answer_tokens AS peak_tokens_no_eviction,
    p.context_tokens AS peak_tokens_with_eviction,
    c.block_tokens + c.memento_tokens + c.answer_tokens - p.context_tokens AS saved_tokens,
    1.0 - CAST(p.context_tokens AS DOUBLE)
        / NULLIF(c.block_tokens + c.memento_tokens + c.answer_tokens, 0) AS saved_fraction,
    CASE WHEN p.context_tokens IS NULL THEN NULL ELSE p.step END AS peak_step,
    CASE WHEN p.context_tokens IS NULL THEN NULL ELSE p.step = c.n_blocks END AS peak_at_answer
FROM peaks AS p
JOIN trace_compression AS c ON c.trace_id = p.trace_id
WHERE p.rank_in_trace = 1
