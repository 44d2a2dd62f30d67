/*
name: paper_kv_figures
version: 1
kind: view
grain: [model, benchmark]
description: >
  The KV figures the Memento paper publishes for a Memento model against the same
  model reasoning in plain chain of thought (github.com/microsoft/memento,
  memento.pdf and blogpost/index.html, "Main results table (Qwen3-8B)": the
  Memento row's peak KV and AUC KV as multiples of the Base row's), one row per
  benchmark. They were measured on each model's own generations on the benchmark's
  problems, not on the traces of this dataset: the report shows them beside
  inference_simulation's ratios as a reference, not as the same measurement.
  The one place they are written: the report reads them here.
columns:
  model: the model the paper trained and served, e.g. `Qwen3-8B`
  benchmark: the benchmark whose problems the model generated on
  peak_ratio_vs_plain_cot: the Memento model's peak KV / the base model's peak KV
  kv_area_ratio_vs_plain_cot: the Memento model's area under the KV curve (AUC KV) / the base model's
audits:
  - not_null: [peak_ratio_vs_plain_cot, kv_area_ratio_vs_plain_cot]
*/
SELECT model, benchmark, CAST(peak AS DOUBLE) AS peak_ratio_vs_plain_cot, CAST(area AS DOUBLE) AS kv_area_ratio_vs_plain_cot
FROM (VALUES
    ('Qwen3-8B', 'AIME''26', 0.39, 0.34),
    ('Qwen3-8B', 'Comp. Math', 0.38, 0.32),
    ('Qwen3-8B', 'MATH-500', 0.47, 0.40),
    ('Qwen3-8B', 'GPQA-Diamond', 0.35, 0.34),
    ('Qwen3-8B', 'LiveCodeBench v6', 0.32, 0.29)
) AS figures(model, benchmark, peak, area)
