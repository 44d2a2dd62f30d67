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
columns:
  domain: the domain, or `all` on the total row
  is_total: true on the one row over all the group's rows (a label reading `all` is not the total)
  traces: analysed (ok) traces in the group
  flagged_traces: flagged traces in the group, left out of every other column
  blocks: block/memento pairs in the group
  median_ratio_chars: median over pairs of memento chars / block chars (the card's ratio)
  median_ratio_tokens: median over pairs of memento tokens / block tokens
  median_tokens_per_block: median over pairs of a block's tokens
  median_tokens_per_memento: median over pairs of a memento's tokens
  median_compression_tokens: median over traces of block tokens / memento tokens
  median_block_tokens_per_trace: median over traces of a trace's block tokens
  median_memento_tokens_per_trace: median over traces of a trace's memento tokens
  median_blocks_per_trace: median over traces of block/memento pairs
  median_block_chars: median over pairs of a block's chars
  median_memento_chars: median over pairs of a memento's chars
  median_compression_chars: median over traces of block chars / memento chars
  median_trace_ratio_chars: median over traces of memento chars / block chars per trace (the tutorial's statistic)
  median_trace_ratio_words: median over traces of memento words / block words per trace (the tutorial's statistic)
  avg_tokens_per_block: average over pairs of a block's tokens (the card's statistic)
  avg_tokens_per_memento: average over pairs of a memento's tokens (the card's statistic)
  avg_block_tokens_per_trace: average over traces of a trace's block tokens (the card's statistic)
  avg_memento_tokens_per_trace: average over traces of a trace's memento tokens (the card's statistic)
  p10_ratio_chars: 10th percentile of memento/block chars over pairs
  p90_ratio_chars: 90th percentile of memento/block chars over pairs
  p10_ratio_tokens: 10th percentile of memento/block tokens over pairs
  p90_ratio_tokens: 90th percentile of memento/block tokens over pairs
  p10_tokens_per_block: 10th percentile of a block's tokens over pairs
  p90_tokens_per_block: 90th percentile of a block's tokens over pairs
  p10_tokens_per_memento: 10th percentile of a memento's tokens over pairs
  p90_tokens_per_memento: 90th percentile of a memento's tokens over pairs
  p10_compression_tokens: 10th percentile of block tokens / memento tokens over traces
  p90_compression_tokens: 90th percentile of block tokens / memento tokens over traces
  p10_blocks_per_trace: 10th percentile of pairs per trace over traces
  p90_blocks_per_trace: 90th percentile of pairs per trace over traces
  p10_block_chars: 10th percentile of a block's chars over pairs
  p90_block_chars: 90th percentile of a block's chars over pairs
  p10_memento_chars: 10th percentile of a memento's chars over pairs
  p90_memento_chars: 90th percentile of a memento's chars over pairs
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
