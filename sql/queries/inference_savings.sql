-- How much of the peak context memento-style eviction saves, per domain and k
-- (k = blocks kept in full). See warehouse.md (Models) for the definition of context.
SELECT
    domain,
    k,
    traces,
    round(median_peak_no_eviction) AS peak_no_eviction,
    round(median_peak_with_eviction) AS peak_with_eviction,
    round(median_saved_fraction, 3) AS saved,
    round(p10_saved_fraction, 3) AS saved_p10,
    round(p90_saved_fraction, 3) AS saved_p90,
    round(share_peaking_at_answer, 3) AS peak_at_answer
FROM inference_summary
ORDER BY is_total, domain, k;
