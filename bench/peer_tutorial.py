"""The peer: the popular OpenMementos tutorial's analysis, as a faithful baseline.

What a user would otherwise run (the Colab "coding implementation on Microsoft's
OpenMementos" tutorial): stream the dataset with `datasets` and iterate it row by
row as Python dicts, parse every response with three `re` patterns (think,
block, summary), collect per-trace character and word ratios in Python lists,
and take per-domain medians with pandas.

    python bench/peer_tutorial.py SAMPLE_DIR [--tokens]

SAMPLE_DIR is a hub-layout directory (README.md card + data/ + full/), streamed
exactly as the tutorial streams `microsoft/OpenMementos`. `--tokens` extends the
peer the way the Memento pipeline counts: cl100k_base tokens of every block and
every memento, one text at a time (bpe-openai `encode_ordinary`, the encoder our
ingest uses), plus a per-trace token ratio.

Prints one JSON line: traces seen, traces kept (well-formed by the tutorial's
rule: at least one block and as many summaries as blocks), response bytes, and
the per-domain medians, so the harness can check that the peer did the work.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# The tutorial's three patterns, verbatim in spirit: non-greedy, DOTALL.
BLOCK_RE = re.compile(r"<\|block_start\|>(.*?)<\|block_end\|>", re.DOTALL)
SUMMARY_RE = re.compile(r"<\|summary_start\|>(.*?)<\|summary_end\|>", re.DOTALL)
THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def parse_memento(response: str) -> dict:
    blocks = [m.strip() for m in BLOCK_RE.findall(response)]
    summaries = [m.strip() for m in SUMMARY_RE.findall(response)]
    think = THINK_RE.search(response)
    final_answer = response.split("</think>", 1)[1].strip() if "</think>" in response else ""
    return {
        "blocks": blocks,
        "summaries": summaries,
        "think": think.group(1) if think else "",
        "final_answer": final_answer,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="hub-layout directory (or hub id) streamed with datasets")
    ap.add_argument("--tokens", action="store_true", help="also count cl100k tokens of every block and memento")
    args = ap.parse_args(argv)

    import pandas as pd
    from datasets import load_dataset

    encode = None
    if args.tokens:
        import bpe_openai

        encode = bpe_openai.get_encoding("cl100k_base").encode_ordinary

    t0 = time.monotonic()
    ds_stream = load_dataset(args.source, split="train", streaming=True)

    domains: list = []
    n_blocks: list[int] = []
    char_ratios: list[float] = []
    word_ratios: list[float] = []
    token_ratios: list[float] = []
    block_tokens: list[int] = []
    memento_tokens: list[int] = []
    seen = 0
    response_bytes = 0
    for example in ds_stream:  # one Python dict per row, as in the tutorial
        seen += 1
        response = example["response"] or ""
        response_bytes += len(response.encode("utf-8"))
        parsed = parse_memento(response)
        blocks, summaries = parsed["blocks"], parsed["summaries"]
        if not blocks or len(blocks) != len(summaries):
            continue  # the tutorial skips malformed traces
        block_chars = sum(len(b) for b in blocks)
        summary_chars = sum(len(s) for s in summaries)
        block_words = sum(len(b.split()) for b in blocks)
        summary_words = sum(len(s.split()) for s in summaries)
        domains.append(example.get("domain"))
        n_blocks.append(len(blocks))
        char_ratios.append(summary_chars / block_chars if block_chars else float("nan"))
        word_ratios.append(summary_words / block_words if block_words else float("nan"))
        if encode is not None:
            bt = [len(encode(b)) for b in blocks]
            st = [len(encode(s)) for s in summaries]
            block_tokens.extend(bt)
            memento_tokens.extend(st)
            token_ratios.append(sum(st) / sum(bt) if sum(bt) else float("nan"))

    columns = {"domain": domains, "n_blocks": n_blocks, "char_ratio": char_ratios, "word_ratio": word_ratios}
    if encode is not None:
        columns["token_ratio"] = token_ratios
    df = pd.DataFrame(columns)
    medians = df.groupby("domain", dropna=False).median(numeric_only=True).round(4)
    out = {
        "traces": seen,
        "kept": len(df),
        "response_bytes": response_bytes,
        "seconds": round(time.monotonic() - t0, 2),
        "medians": {str(k): v for k, v in medians.to_dict(orient="index").items()},
    }
    if encode is not None:
        out["block_tokens"] = sum(block_tokens)
        out["memento_tokens"] = sum(memento_tokens)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
