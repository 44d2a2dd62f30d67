/*
name: inference_simulation
version: 2
kind: incremental
grain: [trace_id, k]
batch_traces: 20000
description: >
  Memento-style inference replayed on each analysed trace, for k = 1, 2, 4, 8,
  against two baselines: the same memento trace with nothing evicted, and the
  plain chain of thought (problem + blocks + answer, no mementos, no memento
  markup). With eviction only the last k blocks stay in the context in full
  (k counts the block being written); earlier blocks survive as their mementos.
  A block is evicted when the memento k blocks after it is finished. Contexts
  count what a serving engine holds: the prompt (problem tokens), the markup
  (<think> and </think> 3 tokens each, each of the four memento markup strings
  6) and the texts (cl100k_base). Peaks are the largest context; the KV area is
  the sum over generated tokens of the context each attends to (itself
  included). docs/inference_simulation.md has the definition.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  domain: the trace's domain; `(unknown)` when missing
  k: "blocks kept in full, the one being written included: 1, 2, 4 or 8"
  n_blocks: blocks of the trace (n)
  blocks_evicted: "blocks no longer in full when the answer is written: n - k + 1 when k <= n, else 0"
  problem_tokens: tokens of the problem, the prompt counted in every context
  markup_tokens: "tokens of the memento markup: 6 for the think tags, 24 per pair"
  peak_tokens_plain_cot: context of the plain chain of thought at its end
  peak_tokens_no_eviction: context of the memento trace at its end, nothing evicted
  peak_tokens_with_eviction: the largest context over all steps with eviction
  saved_tokens_vs_no_eviction: peak_tokens_no_eviction - peak_tokens_with_eviction
  saved_fraction_vs_no_eviction: saved_tokens_vs_no_eviction / peak_tokens_no_eviction
  saved_tokens_vs_plain_cot: peak_tokens_plain_cot - peak_tokens_with_eviction; negative when mementos cost more than eviction frees
  saved_fraction_vs_plain_cot: saved_tokens_vs_plain_cot / peak_tokens_plain_cot
  peak_step: "the earliest step reaching the peak: 0..n-1 for blocks, n for the answer"
  peak_at_answer: peak_step = n
  kv_area_plain_cot: sum over generated tokens of the context each attends to, plain chain of thought
  kv_area_no_eviction: the same for the memento trace without eviction
  kv_area_with_eviction: the same with eviction
  kv_saved_fraction_vs_no_eviction: 1 - kv_area_with_eviction / kv_area_no_eviction
  kv_saved_fraction_vs_plain_cot: 1 - kv_area_with_eviction / kv_area_plain_cot
audits:
  - accepted_values: {column: k, values: [1, 2, 4, 8]}
  - not_null: [n_blocks, blocks_evicted, markup_tokens]
  - accepted_range: {column: saved_tokens_vs_no_eviction, min: 0}
  - accepted_range: {column: saved_fraction_vs_no_eviction, min: 0, max: 1}
  - accepted_range: {column: saved_fraction_vs_plain_cot, max: 1}
  - custom:
      name: eviction_never_grows_the_peak
      sql: SELECT * FROM {this} WHERE peak_tokens_with_eviction > peak_tokens_no_eviction
  - custom:
      name: nothing_evicted_means_no_saving
      sql: >
        SELECT * FROM {this}
        WHERE blocks_evicted = 0 AND (saved_tokens_vs_no_eviction <> 0 OR kv_area_with_eviction <> kv_area_no_eviction)
  - custom:
      name: kv_area_bounded_by_no_eviction
      sql: >
        SELECT * FROM {this}
        WHERE kv_area_with_eviction > kv_area_no_eviction OR kv_area_plain_cot > kv_area_no_eviction
*/
WITH ks AS (
    SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 4 UNION ALL SELECT 8
),
prompts AS (
    -- the problem's tokens, counted at ingest
    SELECT trace_id, CAST(problem_tokens AS BIGINT) AS problem_tokens
    FROM traces
),
runs AS (
    SELECT
        c.trace_id,
        c.dataset,
        c.domain,
        c.n_blocks,
        p.problem_tokens,
        p.problem_tokens AS prompt,
        CAST(c.block_tokens AS BIGINT) AS block_tokens,
        CAST(c.memento_tokens AS BIGINT) AS memento_tokens,
        -- the answer step writes </think> (3 tokens) and the answer
        CAST(c.answer_tokens AS BIGINT) + 3 AS answer_len,
        -- generated tokens: <think> + every block and memento with their markup + </think> + answer
        6 + CAST(c.block_tokens AS BIGINT) + c.memento_tokens + 24 * c.n_blocks + c.answer_tokens AS memento_len,
        6 + CAST(c.block_tokens AS BIGINT) + c.answer_tokens AS plain_len
    FROM trace_compression AS c
    LEFT JOIN prompts AS p ON p.trace_id = c.trace_id
),
pairs AS (
    -- each block and memento with its two markup strings (6 tokens each), and running totals up to j
    SELECT
        trace_id,
        block_idx,
        CAST(block_tokens AS BIGINT) + 12 AS bk,
        CAST(memento_tokens AS BIGINT) + 12 AS mk,
        CAST(sum(CAST(memento_tokens AS BIGINT) + 12) OVER (PARTITION BY trace_id ORDER BY block_idx
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS mementos_so_far,
        CAST(sum(CAST(block_tokens AS BIGINT) + 12) OVER (PARTITION BY trace_id ORDER BY block_idx
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS blocks_so_far
    FROM block_pairs
),
block_steps AS (
    -- step j: block j is written on top of the prompt, <think>, mementos 0..j-1 and blocks j-k+1..j-1,
    -- then memento j on top of that and block j. `kept` = blocks j-k+1..j (the last k, j included).
    SELECT
        s.trace_id,
        ks.k,
        s.block_idx AS step,
        s.bk,
        s.mk,
        r.prompt + 3 + (s.mementos_so_far - s.mk) + (s.blocks_so_far - coalesce(e.blocks_so_far, 0)) - s.bk
            AS before_block,
        r.prompt + 3 + s.mementos_so_far + s.blocks_so_far - coalesce(e.blocks_so_far, 0) AS context_tokens
    FROM pairs AS s
    JOIN runs AS r ON r.trace_id = s.trace_id
    CROSS JOIN ks
    LEFT JOIN pairs AS e ON e.trace_id = s.trace_id AND e.block_idx = s.block_idx - ks.k
),
answer_steps AS (
    -- step n: </think> and the answer, on top of the prompt, <think>, every memento and blocks n-k+1..n-1
    SELECT
        s.trace_id,
        ks.k,
        r.n_blocks AS step,
        r.prompt + 3 + s.mementos_so_far + s.blocks_so_far - coalesce(e.blocks_so_far, 0) AS before_answer,
        r.answer_len
    FROM pairs AS s
    JOIN runs AS r ON r.trace_id = s.trace_id AND s.block_idx = r.n_blocks - 1
    CROSS JOIN ks
    LEFT JOIN pairs AS e ON e.trace_id = s.trace_id AND e.block_idx = r.n_blocks - ks.k
),
all_steps AS (
    -- a segment of L tokens written on a context of C tokens attends to C+1, ..., C+L: L*C + L(L+1)/2
    SELECT
        trace_id,
        k,
        step,
        context_tokens,
        CAST(bk * before_block AS DOUBLE) + CAST(bk * (bk + 1) AS DOUBLE) / 2
            + CAST(mk * (before_block + bk) AS DOUBLE) + CAST(mk * (mk + 1) AS DOUBLE) / 2 AS kv_area
    FROM block_steps
    UNION ALL
    SELECT
        trace_id,
        k,
        step,
        before_answer + answer_len AS context_tokens,
        CAST(answer_len * before_answer AS DOUBLE) + CAST(answer_len * (answer_len + 1) AS DOUBLE) / 2 AS kv_area
    FROM answer_steps
),
per_k AS (
    SELECT trace_id, k, CAST(sum(kv_area) AS BIGINT) AS kv_steps
    FROM all_steps
    GROUP BY trace_id, k
),
peaks AS (
    SELECT
        trace_id,
        k,
        step,
        context_tokens,
        row_number() OVER (PARTITION BY trace_id, k ORDER BY context_tokens DESC, step) AS rank_in_trace
    FROM all_steps
),
measured AS (
    SELECT
        r.trace_id,
        r.dataset,
        r.domain,
        p.k,
        r.n_blocks,
        r.problem_tokens,
        r.prompt,
        r.memento_len,
        r.plain_len,
        p.step,
        p.context_tokens AS peak_with,
        r.prompt + r.memento_len AS peak_no,
        r.prompt + r.plain_len AS peak_plain,
        -- <think> (3 tokens on the prompt) + the steps
        CAST(CAST(3 * r.prompt + 6 AS DOUBLE) + kv.kv_steps AS BIGINT) AS kv_with,
        CAST(CAST(r.memento_len * r.prompt AS DOUBLE) + CAST(r.memento_len * (r.memento_len + 1) AS DOUBLE) / 2
             AS BIGINT) AS kv_no,
        CAST(CAST(r.plain_len * r.prompt AS DOUBLE) + CAST(r.plain_len * (r.plain_len + 1) AS DOUBLE) / 2
             AS BIGINT) AS kv_plain
    FROM peaks AS p
    JOIN runs AS r ON r.trace_id = p.trace_id
    JOIN per_k AS kv ON kv.trace_id = p.trace_id AND kv.k = p.k
    WHERE p.rank_in_trace = 1
)
SELECT
    trace_id,
    dataset,
    domain,
    k,
    n_blocks,
    CASE WHEN n_blocks >= k THEN n_blocks - k + 1 ELSE 0 END AS blocks_evicted,
    problem_tokens,
    6 + 24 * n_blocks AS markup_tokens,
    peak_plain AS peak_tokens_plain_cot,
    peak_no AS peak_tokens_no_eviction,
    peak_with AS peak_tokens_with_eviction,
    peak_no - peak_with AS saved_tokens_vs_no_eviction,
    CAST(peak_no - peak_with AS DOUBLE) / NULLIF(peak_no, 0) AS saved_fraction_vs_no_eviction,
    peak_plain - peak_with AS saved_tokens_vs_plain_cot,
    CAST(peak_plain - peak_with AS DOUBLE) / NULLIF(peak_plain, 0) AS saved_fraction_vs_plain_cot,
    CASE WHEN peak_with IS NULL THEN NULL ELSE step END AS peak_step,
    CASE WHEN peak_with IS NULL THEN NULL ELSE step = n_blocks END AS peak_at_answer,
    kv_plain AS kv_area_plain_cot,
    kv_no AS kv_area_no_eviction,
    kv_with AS kv_area_with_eviction,
    CAST(kv_no - kv_with AS DOUBLE) / NULLIF(kv_no, 0) AS kv_saved_fraction_vs_no_eviction,
    CAST(kv_plain - kv_with AS DOUBLE) / NULLIF(kv_plain, 0) AS kv_saved_fraction_vs_plain_cot
FROM measured
