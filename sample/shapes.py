"""The demo sample in the other input shapes (`mementos sample --format chat|sharegpt|columns`).

The OpenMementos sample (generator.py) is written first, aside, and its default config's rows
are rewritten as one JSON Lines file, `train.jsonl`, with a README.md card that lists it, so
`mementos ingest OUT` reads it as it reads the OpenMementos layout. The rows carry the same
problems and responses, so their traces have the same segments:
- chat: `messages` (user, assistant); every other well-formed trace gives its reasoning in
  `reasoning_content` beside the answer, the rest inline as `<think>…</think>`.
- sharegpt: `conversations` of {from: human|gpt, value}.
- columns: `question`, `output`, `category`, `origin`, `level`, `model` (ingest with
  `--columns problem=question,response=output,domain=category,source=origin,difficulty=level --keep model`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from mementos.foundation.errors import WarehouseError
from mementos.foundation.markup import MARKUP, THINK_CLOSE, THINK_OPEN
from mementos.sample.generator import SampleSummary, write_sample

FORMATS = ("openmementos", "chat", "sharegpt", "columns")
COLUMNS_OPTIONS = "--columns problem=question,response=output,domain=category,source=origin,difficulty=level --keep model"
_CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: train.jsonl
---

# Synthetic reasoning traces, {fmt} shape

The `mementos sample` corpus (seed {seed}, {traces:,} traces) as {what}. Ingest it with
`mementos ingest {{this folder}}{options}`.
<!-- mementos-sample-shape {fmt} -->
"""
_WHAT = {"chat": "chat `messages` (reasoning inline in `<think>` or in `reasoning_content`)",
         "sharegpt": "ShareGPT `conversations` (from human/gpt, value)",
         "columns": "plain columns of other names (question, output, category, origin, level, model)"}


def write_sample_as(out_dir: str | Path, traces: int, fmt: str = "openmementos", seed: int = 0,
                    progress: bool = False, overwrite: bool = False) -> SampleSummary:
    """The sample in the input shape `fmt` (module doc); openmementos is write_sample's hub layout."""
    if fmt == "openmementos":
        return write_sample(out_dir, traces, seed=seed, progress=progress, overwrite=overwrite)
    if fmt not in FORMATS:
        raise WarehouseError(f"unknown sample format {fmt!r}; the formats are {', '.join(FORMATS)}")
    out = Path(out_dir).absolute()
    card = out / "README.md"
    if out.exists() and any(out.iterdir()) and not (
            overwrite and card.is_file() and "<!-- mementos-sample-shape" in card.read_text(encoding="utf-8")):
        raise WarehouseError(f"{out} exists and is not empty; choose another --out (or --overwrite to replace "
                             f"a sample of another shape written there)")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        summary = write_sample(Path(tmp) / "openmementos", traces, seed=seed, progress=progress)
        staged = Path(tmp) / "shaped"
        staged.mkdir()
        with open(staged / "train.jsonl", "w", encoding="utf-8") as fh:
            for path in sorted((summary.out_dir / "data").glob("*.parquet")):
                for batch in pq.ParquetFile(path).iter_batches(batch_size=1000):
                    for row in batch.to_pylist():
                        fh.write(json.dumps(shaped_row(row, fmt), ensure_ascii=False) + "\n")
        options = f" {COLUMNS_OPTIONS}" if fmt == "columns" else ""
        (staged / "README.md").write_text(_CARD.format(fmt=fmt, seed=seed, traces=traces, what=_WHAT[fmt],
                                                       options=options), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), out)
    summary.out_dir, summary.paths = out, ("README.md", "train.jsonl")
    return summary


def shaped_row(row: dict, fmt: str) -> dict:
    """One OpenMementos row (problem, response, domain, source, difficulty) in the shape `fmt`."""
    problem, response = row["problem"], row["response"]
    labels = {k: row[k] for k in ("domain", "source", "difficulty")}
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": problem}, {"from": "gpt", "value": response}], **labels}
    if fmt == "columns":
        return {"question": problem, "output": response, "category": labels["domain"], "origin": labels["source"],
                "level": labels["difficulty"], "model": "mementos-sample"}
    assistant = {"role": "assistant", "content": response}
    split = _reasoning_and_answer(response)
    if split is not None and len(problem or "") % 2 == 0:  # about every other trace, by a stable rule
        assistant = {"role": "assistant", "content": split[1], "reasoning_content": split[0]}
    return {"messages": [{"role": "user", "content": problem}, assistant], **labels}


def _reasoning_and_answer(response: str | None) -> tuple[str, str] | None:
    """(think text, answer) of '<think>\\nR\\n</think>\\n\\nA' with markup only inside R; None otherwise."""
    if not response or not response.startswith(THINK_OPEN + "\n") or response.count(THINK_CLOSE) != 1:
        return None
    reasoning, _, answer = response[len(THINK_OPEN) + 1:].partition(THINK_CLOSE)
    if THINK_OPEN in reasoning or any(token in answer for token in MARKUP) or not reasoning.endswith("\n") \
            or not answer.startswith("\n\n"):
        return None
    return reasoning[:-1], answer[2:]
