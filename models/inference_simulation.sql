/*
name: inference_simulation
version: 3
kind: incremental
grain: [trace_id, k]
batch_traces: 20000
description: >
  Memento-style inference replayed on each analysed trace, for each setting of
  inference_settings (the released vLLM overlay's keep_last_n_blocks,
  keep_last_block_for_answer and mask_delimiters; k = keep_last_n_blocks + 1, 1, 2,
  4 and 8 as bundled), against two baselines: the same memento trace with nothing
  evicted, and the plain chain of thought (problem + <think> + blocks + </think> +
  answer, no mementos, no memento markers). With eviction only the last k blocks
  stay in the context in full (k counts the block being written); an earlier block
  is evicted when the memento after which it falls out of the last k is finished,
  leaving its two delimiters unless mask_delimiters. Contexts count what a serving
  engine holds: the prompt (problem tokens), the markup as the model's tokenizer
  holds it (each marker think_tag_tokens or marker_tokens tokens: one, as bundled)
  and the texts (cl100k_base). The paper's two measures, per trace: the peak context
  (the largest over all steps) and the KV area (the sum over generated tokens of the
  context each attends to, itself included), each also as a ratio to the plain chain
  of thought. docs/inference_simulation.md has the definition.
columns:
  trace_id: the trace, `<dataset>:<source_row>`
  dataset: the dataset name given at ingest (`--name`)
  domain: the trace's domain; `(unknown)` when missing
  k: "blocks kept in full, the one being written included: keep_last_n_blocks + 1"
  keep_last_n_blocks: the overlay's setting replayed (inference_settings)
  keep_last_block_for_answer: the overlay's setting replayed (inference_settings)
  mask_delimiters: the overlay's setting replayed (inference_settings)
  n_blocks: blocks of the trace (n)
  blocks_evicted: "blocks no longer in full when the answer is written: n - k + 1 when k <= n, else 0 (n - 1 with keep_last_block_for_answer at k = 1)"
  problem_tokens: tokens of the problem, the prompt counted in every context
  markup_tokens: "tokens of the markup: 2 think tags and 4 markers per block, each counted as inference_settings says (2 + 4n as bundled)"
  peak_tokens_plain_cot: context of the plain chain of thought at its end
  peak_tokens_no_eviction: context of the memento trace at its end, nothing evicted
  peak_tokens_with_eviction: the largest context over all steps with eviction
  saved_tokens_vs_no_eviction: peak_tokens_no_eviction - peak_tokens_with_eviction
  saved_fraction_vs_no_eviction: saved_tokens_vs_no_eviction / peak_tokens_no_eviction
  saved_tokens_vs_plain_cot: peak_tokens_plain_cot - peak_tokens_with_eviction; negative when mementos cost more than eviction frees
  saved_fraction_vs_plain_cot: saved_tokens_vs_plain_cot / peak_tokens_plain_cot
  peak_ratio_vs_plain_cot: "peak_tokens_with_eviction / peak_tokens_plain_cot (the paper's peak KV ratio, 1 - saved_fraction_vs_plain_cot)"
  peak_step: "the earliest step reaching the peak: 0..n-1 for blocks, n for the answer"
  peak_at_answer: peak_step = n
  kv_area_plain_cot: sum over generated tokens of the context each attends to, plain chain of thought
  kv_area_no_eviction: the same for the memento trace without eviction
  kv_area_with_eviction: the same with eviction
  kv_saved_fraction_vs_no_eviction: 1 - kv_area_with_eviction / kv_area_no_eviction
  kv_saved_fraction_vs_plain_cot: 1 - kv_area_with_eviction / kv_area_plain_cot
  kv_area_ratio_vs_plain_cot: "kv_area_with_eviction / kv_area_plain_cot (the paper's area-under-KV ratio)"
audits:
  - accepted_range: {column: k, min: 1}
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
WITH settings AS (
    SELECT
        keep_last_n_blocks + 1 AS k,
        keep_last_n_blocks,
        keep_last_block_for_answer,
        mask_delimiters,
        CAST(think_tag_tokens AS BIGINT) AS t,
        CAST(marker_tokens AS BIGINT) AS m,
        -- what an evicted block leaves in the context: its two delimiters, unless they are masked with it
        CASE WHEN mask_delimiters THEN 0 ELSE 2 * CAST(marker_tokens AS BIGINT) END AS residue,
        -- completed blocks in full while the answer is written: the overlay keeps the last one for it
        -- only when it keeps no other
        CASE WHEN keep_last_block_for_answer THEN greatest(keep_last_n_blocks, 1) ELSE keep_last_n_blocks END
            AS kept_for_answer
    FROM inference_settings
),
runs AS (
    SELECT
        c.trace_id,
        c.dataset,
        c.domain,
        c.n_blocks,
        CAST(p.problem_tokens AS BIGINT) AS prompt,
        CAST(c.block_tokens AS BIGINT) AS block_tokens,
        CAST(c.memento_tokens AS BIGINT) AS memento_tokens,
        CAST(c.answer_tokens AS BIGINT) AS answer_tokens
    FROM trace_compression AS c
    LEFT JOIN traces AS p ON p.trace_id = c.trace_id
),
runs_by_setting AS (
    SELECT
        r.*,
        s.*,
        -- the answer step writes </think> and the answer
        r.answer_tokens + s.t AS answer_len,
        -- generated: <think>, every block and memento within their markers, </think>, the answer
        2 * s.t + r.block_tokens + r.memento_tokens + 4 * s.m * r.n_blocks + r.answer_tokens AS memento_len,
        2 * s.t + r.block_tokens + r.answer_tokens AS plain_len
    FROM runs AS r
    CROSS JOIN settings AS s
),
pairs AS (
    -- each block and memento, and the running totals of their texts up to j (markup is added per setting)
    SELECT
        trace_id,
        block_idx,
        CAST(block_tokens AS BIGINT) AS b,
        CAST(memento_tokens AS BIGINT) AS mt,
        CAST(sum(CAST(memento_tokens AS BIGINT)) OVER (PARTITION BY trace_id ORDER BY block_idx
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS mementos_so_far,
        CAST(sum(CAST(block_tokens AS BIGINT)) OVER (PARTITION BY trace_id ORDER BY block_idx
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS blocks_so_far
    FROM block_pairs
),
block_steps AS (
    -- step j ends with memento j written: the prompt, <think>, mementos 0..j, blocks j-k+1..j in full
    -- and what each earlier block left. bk and mk weigh block j and memento j within their two markers.
    SELECT
        s.trace_id,
        r.k,
        s.block_idx AS step,
        s.b + 2 * r.m AS bk,
        s.mt + 2 * r.m AS mk,
        r.prompt + r.t + s.mementos_so_far + 2 * r.m * (s.block_idx + 1)
            + s.blocks_so_far - coalesce(e.blocks_so_far, 0) + 2 * r.m * least(s.block_idx + 1, r.k)
            + r.residue * greatest(s.block_idx + 1 - r.k, 0) AS context_tokens
    FROM pairs AS s
    JOIN runs_by_setting AS r ON r.trace_id = s.trace_id
    LEFT JOIN pairs AS e ON e.trace_id = s.trace_id AND e.block_idx = s.block_idx - r.k
),
answer_steps AS (
    -- step n: </think> and the answer, on top of the prompt, <think>, every memento, the last
    -- kept_for_answer blocks in full and what the others left
    SELECT
        s.trace_id,
        r.k,
        r.n_blocks AS step,
        r.prompt + r.t + s.mementos_so_far + 2 * r.m * r.n_blocks
            + s.blocks_so_far - coalesce(e.blocks_so_far, 0) + 2 * r.m * least(r.n_blocks, r.kept_for_answer)
            + r.residue * greatest(r.n_blocks - r.kept_for_answer, 0) AS before_answer,
        r.answer_len
    FROM pairs AS s
    JOIN runs_by_setting AS r ON r.trace_id = s.trace_id AND s.block_idx = r.n_blocks - 1
    LEFT JOIN pairs AS e ON e.trace_id = s.trace_id AND e.block_idx = r.n_blocks - 1 - r.kept_for_answer
),
all_steps AS (
    -- a segment of L tokens written on a context of C tokens attends to C+1, ..., C+L: L*C + L(L+1)/2;
    -- block j is written on the step's context less memento j and itself, memento j on top of block j
    SELECT
        trace_id,
        k,
        step,
        context_tokens,
        CAST(bk * (context_tokens - mk - bk) AS DOUBLE) + CAST(bk * (bk + 1) AS DOUBLE) / 2
            + CAST(mk * (context_tokens - mk) AS DOUBLE) + CAST(mk * (mk + 1) AS DOUBLE) / 2 AS kv_area
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
        r.*,
        p.step,
        p.context_tokens AS peak_with,
        r.prompt + r.memento_len AS peak_no,
        r.prompt + r.plain_len AS peak_plain,
        -- <think> on the prompt, then the steps
        CAST(CAST(r.t * r.prompt AS DOUBLE) + CAST(r.t * (r.t + 1) AS DOUBLE) / 2 + kv.kv_steps AS BIGINT) AS kv_with,
        CAST(CAST(r.memento_len * r.prompt AS DOUBLE) + CAST(r.memento_len * (r.memento_len + 1) AS DOUBLE) / 2
             AS BIGINT) AS kv_no,
        CAST(CAST(r.plain_len * r.prompt AS DOUBLE) + CAST(r.plain_len * (r.plain_len + 1) AS DOUBLE) / 2
             AS BIGINT) AS kv_plain
    FROM peaks AS p
    JOIN runs_by_setting AS r ON r.trace_id = p.trace_id AND r.k = p.k
    JOIN per_k AS kv ON kv.trace_id = p.trace_id AND kv.k = p.k
    WHERE p.rank_in_trace = 1
)
SELECT
    trace_id,
    dataset,
    domain,
    k,
    keep_last_n_blocks,
    keep_last_block_for_answer,
    mask_delimiters,
    n_blocks,
    greatest(n_blocks - kept_for_answer, 0) AS blocks_evicted,
    prompt AS problem_tokens,
    2 * t + 4 * m * n_blocks AS markup_tokens,
    peak_plain AS peak_tokens_plain_cot,
    peak_no AS peak_tokens_no_eviction,
    peak_with AS peak_tokens_with_eviction,
    peak_no - peak_with AS saved_tokens_vs_no_eviction,
    CAST(peak_no - peak_with AS DOUBLE) / NULLIF(peak_no, 0) AS saved_fraction_vs_no_eviction,
    peak_plain - peak_with AS saved_tokens_vs_plain_cot,
    CAST(peak_plain - peak_with AS DOUBLE) / NULLIF(peak_plain, 0) AS saved_fraction_vs_plain_cot,
    CAST(peak_with AS DOUBLE) / NULLIF(peak_plain, 0) AS peak_ratio_vs_plain_cot,
    CASE WHEN peak_with IS NULL THEN NULL ELSE step END AS peak_step,
    CASE WHEN peak_with IS NULL THEN NULL ELSE step = n_blocks END AS peak_at_answer,
    kv_plain AS kv_area_plain_cot,
    kv_no AS kv_area_no_eviction,
    kv_with AS kv_area_with_eviction,
    CAST(kv_no - kv_with AS DOUBLE) / NULLIF(kv_no, 0) AS kv_saved_fraction_vs_no_eviction,
    CAST(kv_plain - kv_with AS DOUBLE) / NULLIF(kv_plain, 0) AS kv_saved_fraction_vs_plain_cot,
    CAST(kv_with AS DOUBLE) / NULLIF(kv_plain, 0) AS kv_area_ratio_vs_plain_cot
FROM measured
