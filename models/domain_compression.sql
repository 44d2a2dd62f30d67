/*
name: domain_compression
version: 3
kind: view
grain: [domain, is_total]
description: >
  compression_breakdown by domain, with an 'all' row for all analysed traces
  together (is_total true; a domain whose label is 'all' has is_total false): traces (analysed) and flagged_traces (left out, counted apart), then
  medians and p10/p90 of the card's measures, and the averages of the token
  counts. Read it beside the card with the statistic the card uses: median
  ratio_chars math 0.16, code 0.18, science 0.23; average tokens per block
  ~1,150, per memento ~194, per trace ~10,900 -> ~1,850, ~6x as the ratio of
  those averages (sql/queries/card_comparison.sql).
audits:
  - not_null: [is_total, traces, flagged_traces]
*/
SELECT
    value AS domain,
    is_total,
    traces,
    flagged_traces,
    blocks,
    median_ratio_chars,
    median_ratio_tokens,
    median_tokens_per_block,
    median_tokens_per_memento,
    median_compression_tokens,
    median_block_tokens_per_trace,
    median_memento_tokens_per_trace,
    median_blocks_per_trace,
    median_block_chars,
    median_memento_chars,
    median_compression_chars,
    median_trace_ratio_chars,
    median_trace_ratio_words,
    avg_tokens_per_block,
    avg_tokens_per_memento,
    avg_block_tokens_per_trace,
    avg_memento_tokens_per_trace,
    p10_ratio_chars,
    p90_ratio_chars,
    p10_ratio_tokens,
    p90_ratio_tokens,
    p10_tokens_per_block,
    p90_tokens_per_block,
    p10_tokens_per_memento,
    p90_tokens_per_memento,
    p10_compression_tokens,
    p90_compression_tokens,
    p10_blocks_per_trace,
    p90_blocks_per_trace,
    p10_block_chars,
    p90_block_chars,
    p10_memento_chars,
    p90_memento_chars
FROM compression_breakdown
WHERE dimension IN ('domain', 'all')
