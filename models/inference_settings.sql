/*
name: inference_settings
version: 1
kind: view
grain: [keep_last_n_blocks]
description: >
  The serving settings inference_simulation replays, one row per setting, named
  as the released vLLM overlay names them (github.com/microsoft/memento,
  vllm/vllm/config/block_masking.py, BlockMaskingConfig; vllm/README.md, "Block
  masking parameters"). The bundled rows follow the overlay's defaults and its
  README's Qwen3 example: keep_last_n_blocks 0 (the default), 1, 3 and 7,
  keep_last_block_for_answer false (the default), mask_delimiters false (Qwen3
  and OLMo3 training; the overlay requires it set), and every marker one token,
  as a Memento model's vocabulary holds it. To replay other settings, put a
  model of this name in your --models directory: it replaces this one (think_tag_tokens
  3 and marker_tokens 6 with mask_delimiters true is the cl100k count of the
  markup as text, the simulation's count before version 3). docs/inference_simulation.md
  has the definitions.
columns:
  keep_last_n_blocks: "the overlay's keep_last_n_blocks: completed blocks kept in full beside the one being written (k = keep_last_n_blocks + 1)"
  keep_last_block_for_answer: "the overlay's keep_last_block_for_answer: with keep_last_n_blocks 0, the last block stays in full while the answer is written"
  mask_delimiters: "the overlay's mask_delimiters: true evicts <|block_start|> and <|block_end|> with their block (Phi-3/Phi-4 training), false keeps them (Qwen3/OLMo3)"
  think_tag_tokens: tokens counted for each of <think> and </think>
  marker_tokens: tokens counted for each of <|block_start|>, <|block_end|>, <|summary_start|> and <|summary_end|>
audits:
  - not_null: [keep_last_block_for_answer, mask_delimiters, think_tag_tokens, marker_tokens]
  - accepted_range: {column: keep_last_n_blocks, min: 0}
  - accepted_range: {column: think_tag_tokens, min: 0}
  - accepted_range: {column: marker_tokens, min: 0}
*/
SELECT keep_last_n_blocks, keep_last_block_for_answer, mask_delimiters, think_tag_tokens, marker_tokens
FROM (VALUES
    (0, false, false, 1, 1),
    (1, false, false, 1, 1),
    (3, false, false, 1, 1),
    (7, false, false, 1, 1)
) AS settings(keep_last_n_blocks, keep_last_block_for_answer, mask_delimiters, think_tag_tokens, marker_tokens)
