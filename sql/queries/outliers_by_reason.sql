-- What outlier_traces found, per reason and domain, with the share of the
-- domain's traces (ok and flagged) that each reason covers.
WITH reasons AS (
    SELECT trace_id, domain, unnest(string_split(reasons, ',')) AS reason
    FROM outlier_traces
),
domain_sizes AS (
    SELECT domain, count(*) AS traces FROM all_traces GROUP BY domain
)
SELECT
    r.reason,
    r.domain,
    count(*) AS traces,
    round(100.0 * count(*) / max(s.traces), 2) AS pct_of_domain,
    min(r.trace_id) AS example_trace
FROM reasons AS r
JOIN domain_sizes AS s ON s.domain = r.domain
GROUP BY r.reason, r.domain
ORDER BY r.reason, traces DESC;
