-- Do the full config's sentence-level blocks agree with the default markup?
-- Counts per outcome, with the most common first disagreeing block.
SELECT
    CASE WHEN aligned THEN 'aligned' ELSE disagreement END AS outcome,
    count(*) AS traces,
    count(*) FILTER (WHERE default_status = 'flagged') AS default_flagged,
    count(*) FILTER (WHERE full_status = 'flagged') AS full_flagged,
    mode(first_disagreeing_block) AS usual_first_block,
    min(trace_id) AS example_trace
FROM full_alignment
GROUP BY ALL
ORDER BY traces DESC;
