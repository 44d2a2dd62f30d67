/*
name: inference_summary
version: 2
kind: view
grain: [domain, k, is_total]
description: >
  inference_simulation summarised per domain and k, with domain 'all' for all
  analysed traces together (is_total true; a domain whose label is 'all' has
  is_total false): medians of the peak context with and without
  eviction, and the median, p10 and p90 of the fraction of the peak saved.
audits:
  - not_null: [is_total, traces]
*/
SELECT
    CASE WHEN GROUPING(domain) = 1 THEN 'all' ELSE domain END AS domain,
    k,
    GROUPING(domain) = 1 AS is_total,
    count(*) AS traces,
    quantile_cont(peak_tokens_no_eviction, 0.5) AS median_peak_no_eviction,
    quantile_cont(peak_tokens_with_eviction, 0.5) AS median_peak_with_eviction,
    quantile_cont(saved_fraction, 0.5) AS median_saved_fraction,
    quantile_cont(saved_fraction, 0.1) AS p10_saved_fraction,
    quantile_cont(saved_fraction, 0.9) AS p90_saved_fraction,
    -- integers, not 1.0/0.0: Spark averages DECIMAL literals as DECIMAL(6,5); DuckDB gives the same DOUBLE either way
    avg(CASE WHEN peak_at_answer THEN 1 ELSE 0 END) AS share_peaking_at_answer
FROM inference_simulation
GROUP BY GROUPING SETS ((domain, k), (k))
