/*
name: card_figures
version: 1
kind: view
grain: [measure, domain]
description: >
  The figures the OpenMementos dataset card publishes (huggingface.co/datasets/microsoft/OpenMementos,
  "Block & Summary Statistics"), one row per figure, with the statistic the card states for it;
  domain 'all' for the figures over every trace. The one place they are written: the report
  (warehouse/card.py), sql/queries/card_comparison.sql and the tests read them here.
columns:
  measure: the figure, e.g. `tokens per block` or `memento/block ratio (chars)`
  domain: "`math`, `code` or `science` for the ratios; `all` for the figures over every trace"
  statistic: how the card computes it, e.g. `median of per-block ratios`, `average over blocks`
  card: the figure the card publishes
audits:
  - not_null: [statistic, card]
*/
SELECT measure, domain, statistic, CAST(card AS DOUBLE) AS card
FROM (VALUES
    ('memento/block ratio (chars)', 'math', 'median of per-block ratios', 0.16),
    ('memento/block ratio (chars)', 'code', 'median of per-block ratios', 0.18),
    ('memento/block ratio (chars)', 'science', 'median of per-block ratios', 0.23),
    ('tokens per block', 'all', 'average over blocks', 1150),
    ('tokens per memento', 'all', 'average over blocks', 194),
    ('block tokens per trace', 'all', 'average over traces', 10900),
    ('memento tokens per trace', 'all', 'average over traces', 1850),
    ('trace-level compression (x)', 'all', 'ratio of the averages per trace', 6.0)
) AS figures(measure, domain, statistic, card)
