-- The last build of each model: when, how long, how many rows, and whether its
-- audits passed (failed builds keep the previous table; detail says why).
SELECT
    model,
    version,
    status,
    rows,
    round(seconds, 2) AS seconds,
    built_at,
    detail
FROM model_builds
QUALIFY row_number() OVER (PARTITION BY model ORDER BY built_at DESC) = 1
ORDER BY built_at;
