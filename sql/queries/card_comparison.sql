-- The warehouse's compression figures beside the OpenMementos card's.
-- Card: median memento/block char ratio math 0.16, code 0.18, science 0.23;
-- ~1,150 tokens per block, ~194 per memento; ~6x trace-level compression
-- (~10,900 block tokens -> ~1,850 memento tokens per trace).
WITH card AS (
    SELECT 'math' AS domain, 0.16 AS ratio, NULL AS per_block, NULL AS per_memento, NULL AS compression
    UNION ALL SELECT 'code', 0.18, NULL, NULL, NULL
    UNION ALL SELECT 'science', 0.23, NULL, NULL, NULL
    UNION ALL SELECT 'all', NULL, 1150, 194, 6.0
)
SELECT
    d.domain,
    d.traces,
    d.flagged_traces,
    round(d.median_ratio_chars, 3) AS ratio_chars,
    c.ratio AS card_ratio,
    round(d.median_ratio_chars - c.ratio, 3) AS ratio_diff,
    round(d.median_tokens_per_block) AS tokens_per_block,
    c.per_block AS card_per_block,
    round(d.median_tokens_per_memento) AS tokens_per_memento,
    c.per_memento AS card_per_memento,
    round(d.median_compression_tokens, 2) AS compression,
    c.compression AS card_compression
FROM domain_compression AS d
LEFT JOIN card AS c ON c.domain = d.domain
ORDER BY d.domain = 'all', d.traces DESC;
