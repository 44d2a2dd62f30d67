-- Peak context saved by memento-style eviction, per domain and k.
-- k = blocks kept in full, the one being written included. The peak is compared with
-- the memento trace with nothing evicted and with the plain chain of thought; then the
-- KV area saved against the plain chain of thought, and how often the peak fits 8k / 32k.
-- See docs/inference_simulation.md for the definitions.
SELECT
    domain,
    k,
    traces,
    round(median_peak_plain_cot) AS peak_plain_cot,
    round(median_peak_no_eviction) AS peak_no_eviction,
    round(median_peak_with_eviction) AS peak_with_eviction,
    round(p90_peak_with_eviction) AS p90_peak_with_eviction,
    round(median_saved_fraction_vs_no_eviction, 3) AS saved_vs_no_eviction,
    round(median_saved_fraction_vs_plain_cot, 3) AS saved_vs_plain_cot,
    round(median_kv_saved_fraction_vs_plain_cot, 3) AS kv_saved_vs_plain_cot,
    round(share_fits_8k_plain_cot, 3) AS fits_8k_plain_cot,
    round(share_fits_8k_with_eviction, 3) AS fits_8k_with_eviction,
    round(share_fits_32k_plain_cot, 3) AS fits_32k_plain_cot,
    round(share_fits_32k_with_eviction, 3) AS fits_32k_with_eviction,
    round(share_peaking_at_answer, 3) AS peak_at_answer
FROM inference_summary
ORDER BY is_total, domain, k;
