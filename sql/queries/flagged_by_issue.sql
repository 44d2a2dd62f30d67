-- Why traces were flagged: each parse issue code of the default config, how many
-- traces have it, in which domains, and one example trace to look at.
SELECT
    i.code,
    count(DISTINCT i.trace_id) AS traces,
    string_agg(DISTINCT t.domain, ', ' ORDER BY t.domain) AS domains,
    min(i.trace_id) AS example_trace,
    min(i.detail) AS example_detail
FROM parse_issues AS i
JOIN all_traces AS t ON t.trace_id = i.trace_id
WHERE i.config = 'default'
GROUP BY i.code
ORDER BY traces DESC, i.code;
