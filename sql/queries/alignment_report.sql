-- Do the full config's rows and the default traces link, and do they agree?
-- Counts per link and outcome, with the most common first disagreeing block.
SELECT
    link,
    CASE
        WHEN link = 'unlinked' AND full_trace_id IS NULL THEN 'default trace without a full row'
        WHEN link = 'unlinked' THEN 'full row without a default trace'
        WHEN aligned THEN 'aligned'
        ELSE disagreement
    END AS outcome,
    count(*) AS rows,
    count(*) FILTER (WHERE default_status = 'flagged') AS default_flagged,
    count(*) FILTER (WHERE full_status = 'flagged') AS full_flagged,
    mode(first_disagreeing_block) AS usual_first_block,
    min(coalesce(trace_id, full_trace_id)) AS example
FROM full_alignment
GROUP BY ALL
ORDER BY rows DESC, link, outcome;
