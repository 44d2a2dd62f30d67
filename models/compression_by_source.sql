/*
name: compression_by_source
version: 3
kind: view
grain: [source, is_total]
description: >
  compression_breakdown by source, with an 'all' row for all analysed traces
  together (is_total true; a source whose label is 'all' has is_total false): traces (analysed) and flagged_traces (left out, counted apart), then
  medians and p10/p90 of the card's measures.
audits:
  - not_null: [is_total, traces, flagged_traces]
*/
SELECT
    value AS source,
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
WHERE dimension IN ('source', 'all')
