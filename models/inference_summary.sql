/*
name: inference_summary
version: 5
kind: table
grain: [domain, k, is_total]
description: >
  inference_simulation summarised per domain and k, with domain 'all' for all
  analysed traces together (is_total true; a domain whose label is 'all' has
  is_total false): median and p90 of the peak context for the plain
  chain of thought, the memento trace without eviction and with eviction; the
  median (and p10/p90) fraction of the peak saved against each baseline and the
  median fraction of the KV area saved; the paper's two measures as medians of
  the per-trace ratios to the plain chain of thought (peak and KV area); the
  share of traces whose peak fits 8k, 16k and 32k tokens (8,192, 16,384, 32,768) for each of the three; and how
  often the peak is at the answer.
columns:
  domain: the domain, or `all` on the total row
  k: "blocks kept in full: 1, 2, 4 or 8"
  is_total: true on the one row over all the group's rows (a label reading `all` is not the total)
  traces: analysed traces with token counts in the group
  median_peak_plain_cot: median peak context of the plain chain of thought, in tokens
  median_peak_no_eviction: median peak context of the memento trace without eviction, in tokens
  median_peak_with_eviction: median peak context of the memento trace with eviction, in tokens
  p90_peak_plain_cot: 90th percentile of the peak context of the plain chain of thought
  p90_peak_no_eviction: 90th percentile of the peak context of the memento trace without eviction
  p90_peak_with_eviction: 90th percentile of the peak context of the memento trace with eviction
  median_saved_fraction_vs_no_eviction: median of the peak saved by eviction against the memento trace without eviction, as a fraction
  p10_saved_fraction_vs_no_eviction: 10th percentile of the peak saved by eviction against the memento trace without eviction, as a fraction
  p90_saved_fraction_vs_no_eviction: 90th percentile of the peak saved by eviction against the memento trace without eviction, as a fraction
  median_saved_fraction_vs_plain_cot: median of the peak saved by eviction against the plain chain of thought, as a fraction
  p10_saved_fraction_vs_plain_cot: 10th percentile of the peak saved by eviction against the plain chain of thought, as a fraction
  p90_saved_fraction_vs_plain_cot: 90th percentile of the peak saved by eviction against the plain chain of thought, as a fraction
  median_kv_saved_fraction_vs_plain_cot: median KV area saved by eviction against the plain chain of thought, as a fraction
  median_kv_saved_fraction_vs_no_eviction: median KV area saved by eviction against no eviction, as a fraction
  median_peak_ratio_vs_plain_cot: median over traces of the peak with eviction / the plain chain of thought's peak (the paper's peak KV ratio)
  median_kv_area_ratio_vs_plain_cot: median over traces of the KV area with eviction / the plain chain of thought's (the paper's area-under-KV ratio)
  share_fits_8k_plain_cot: share of the traces whose peak for the plain chain of thought is at most 8,192 tokens
  share_fits_8k_no_eviction: share of the traces whose peak for the memento trace without eviction is at most 8,192 tokens
  share_fits_8k_with_eviction: share of the traces whose peak for the memento trace with eviction is at most 8,192 tokens
  share_fits_16k_plain_cot: share of the traces whose peak for the plain chain of thought is at most 16,384 tokens
  share_fits_16k_no_eviction: share of the traces whose peak for the memento trace without eviction is at most 16,384 tokens
  share_fits_16k_with_eviction: share of the traces whose peak for the memento trace with eviction is at most 16,384 tokens
  share_fits_32k_plain_cot: share of the traces whose peak for the plain chain of thought is at most 32,768 tokens
  share_fits_32k_no_eviction: share of the traces whose peak for the memento trace without eviction is at most 32,768 tokens
  share_fits_32k_with_eviction: share of the traces whose peak for the memento trace with eviction is at most 32,768 tokens
  share_peaking_at_answer: share of the traces whose peak is reached while the answer is written
audits:
  - not_null: [is_total, traces]
  - accepted_range: {column: share_fits_8k_with_eviction, min: 0, max: 1}
  - custom:
      name: eviction_fits_at_least_as_often
      sql: >
        SELECT * FROM {this}
        WHERE share_fits_8k_with_eviction < share_fits_8k_no_eviction
           OR share_fits_16k_with_eviction < share_fits_16k_no_eviction
           OR share_fits_32k_with_eviction < share_fits_32k_no_eviction
*/
-- shares: integers, not 1.0/0.0 (Spark averages DECIMAL literals as DECIMAL); NULL peaks (no tokens) stay NULL
SELECT
    CASE WHEN GROUPING(domain) = 1 THEN 'all' ELSE domain END AS domain,
    k,
    GROUPING(domain) = 1 AS is_total,
    count(*) AS traces,
    -- several quantiles of one column are one list-form call, indexed: DuckDB computes the identical
    -- calls once, where separate calls each hold a copy of the column
    quantile_cont(peak_tokens_plain_cot, [0.5, 0.9])[1] AS median_peak_plain_cot,
    quantile_cont(peak_tokens_no_eviction, [0.5, 0.9])[1] AS median_peak_no_eviction,
    quantile_cont(peak_tokens_with_eviction, [0.5, 0.9])[1] AS median_peak_with_eviction,
    quantile_cont(peak_tokens_plain_cot, [0.5, 0.9])[2] AS p90_peak_plain_cot,
    quantile_cont(peak_tokens_no_eviction, [0.5, 0.9])[2] AS p90_peak_no_eviction,
    quantile_cont(peak_tokens_with_eviction, [0.5, 0.9])[2] AS p90_peak_with_eviction,
    quantile_cont(saved_fraction_vs_no_eviction, [0.1, 0.5, 0.9])[2] AS median_saved_fraction_vs_no_eviction,
    quantile_cont(saved_fraction_vs_no_eviction, [0.1, 0.5, 0.9])[1] AS p10_saved_fraction_vs_no_eviction,
    quantile_cont(saved_fraction_vs_no_eviction, [0.1, 0.5, 0.9])[3] AS p90_saved_fraction_vs_no_eviction,
    quantile_cont(saved_fraction_vs_plain_cot, [0.1, 0.5, 0.9])[2] AS median_saved_fraction_vs_plain_cot,
    quantile_cont(saved_fraction_vs_plain_cot, [0.1, 0.5, 0.9])[1] AS p10_saved_fraction_vs_plain_cot,
    quantile_cont(saved_fraction_vs_plain_cot, [0.1, 0.5, 0.9])[3] AS p90_saved_fraction_vs_plain_cot,
    quantile_cont(kv_saved_fraction_vs_plain_cot, 0.5) AS median_kv_saved_fraction_vs_plain_cot,
    quantile_cont(kv_saved_fraction_vs_no_eviction, 0.5) AS median_kv_saved_fraction_vs_no_eviction,
    quantile_cont(peak_ratio_vs_plain_cot, 0.5) AS median_peak_ratio_vs_plain_cot,
    quantile_cont(kv_area_ratio_vs_plain_cot, 0.5) AS median_kv_area_ratio_vs_plain_cot,
    avg(CASE WHEN peak_tokens_plain_cot <= 8192 THEN 1 WHEN peak_tokens_plain_cot > 8192 THEN 0 END)
        AS share_fits_8k_plain_cot,
    avg(CASE WHEN peak_tokens_no_eviction <= 8192 THEN 1 WHEN peak_tokens_no_eviction > 8192 THEN 0 END)
        AS share_fits_8k_no_eviction,
    avg(CASE WHEN peak_tokens_with_eviction <= 8192 THEN 1 WHEN peak_tokens_with_eviction > 8192 THEN 0 END)
        AS share_fits_8k_with_eviction,
    avg(CASE WHEN peak_tokens_plain_cot <= 16384 THEN 1 WHEN peak_tokens_plain_cot > 16384 THEN 0 END)
        AS share_fits_16k_plain_cot,
    avg(CASE WHEN peak_tokens_no_eviction <= 16384 THEN 1 WHEN peak_tokens_no_eviction > 16384 THEN 0 END)
        AS share_fits_16k_no_eviction,
    avg(CASE WHEN peak_tokens_with_eviction <= 16384 THEN 1 WHEN peak_tokens_with_eviction > 16384 THEN 0 END)
        AS share_fits_16k_with_eviction,
    avg(CASE WHEN peak_tokens_plain_cot <= 32768 THEN 1 WHEN peak_tokens_plain_cot > 32768 THEN 0 END)
        AS share_fits_32k_plain_cot,
    avg(CASE WHEN peak_tokens_no_eviction <= 32768 THEN 1 WHEN peak_tokens_no_eviction > 32768 THEN 0 END)
        AS share_fits_32k_no_eviction,
    avg(CASE WHEN peak_tokens_with_eviction <= 32768 THEN 1 WHEN peak_tokens_with_eviction > 32768 THEN 0 END)
        AS share_fits_32k_with_eviction,
    avg(CASE WHEN peak_at_answer THEN 1 WHEN NOT peak_at_answer THEN 0 END) AS share_peaking_at_answer
FROM inference_simulation
GROUP BY GROUPING SETS ((domain, k), (k))
