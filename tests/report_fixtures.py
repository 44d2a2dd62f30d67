"""Warehouses for the report tests: a hostile one, whose every text field is an attack.

Each payload sets `window.__pwned` (and opens a dialog) if it ever runs as
script in the page, so the browser test can tell escaping worked. The same
payloads carry rich markup, matplotlib math (`$...$`) and a terminal escape,
for `mementos show` and the plots.
"""

from __future__ import annotations

from pathlib import Path

from conftest import write_hub_dir

PAYLOADS = [
    "<script>window.__pwned = 1; alert(1)</script>",
    "</textarea><img src=x onerror=\"window.__pwned = 2; alert(2)\">",
    "javascript:alert(3)",
    "\"><svg onload=\"window.__pwned = 4; alert(4)\">",
    "'><iframe src=\"javascript:window.__pwned = 5; alert(5)\"></iframe>",
    "</div></section><a href=\"javascript:alert(6)\">click</a>{{ 7 * 7 }}",
]
DATASET = "<script>alert('ds')</script>\"><b>hostile"
DOMAINS = ["<script>window.__pwned = 7; alert(7)</script>", "$\\frac{1}{0}$ \"><svg onload=alert(8)> $"]
SOURCE = "javascript:alert(9) <img src=x onerror=alert(9)>"
RICH = "[bold red]not markup[/bold red] \x1b[31mESC\x1b[0m"


def hostile_trace(i: int) -> dict:
    """A well-formed Memento trace whose problem, blocks, mementos and answer are all payloads."""
    p = PAYLOADS
    blocks = [(f"block {i}.{j}: {p[j % len(p)]} then {p[(j + 1) % len(p)]} " + "and more reasoning " * 20).strip()
              for j in range(3)]
    mementos = [f"memento {i}.{j}: {p[(j + 2) % len(p)]} {RICH if j == 0 else ''}".strip() for j in range(3)]
    answer = f"answer {i}: {p[(i + 3) % len(p)]} javascript:alert(10)"
    problem = f"problem {i}: {p[i % len(p)]}\n  indented line {RICH}"
    body = "".join(f"<|block_start|>\n{b}\n<|block_end|>\n<|summary_start|>\n{m}\n<|summary_end|>\n"
                   for b, m in zip(blocks, mementos))
    return {
        "problem": problem,
        "response": f"<think>\n{body}</think>\n\n{answer}",
        "domain": DOMAINS[i % len(DOMAINS)],
        "source": SOURCE,
        "difficulty": f"<b>{i}</b>",
        "_blocks": blocks, "_mementos": mementos, "_answer": answer,
    }


def hostile_rows(n: int = 4) -> list[dict]:
    return [hostile_trace(i) for i in range(n)]


def write_hostile(root: Path, n: int = 4) -> Path:
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in hostile_rows(n)]
    return write_hub_dir(root, rows)


def ingest_hostile(src_root: Path, db: Path, n: int = 4) -> list[str]:
    """Ingest the hostile dataset into db (beside whatever is there); returns its trace ids."""
    from mementos.ingest.pipeline import run_ingest

    write_hostile(src_root, n)
    run_ingest(str(src_root), db, config="default", name=DATASET, with_tokens=True, workers=0, progress=False)
    return [f"{DATASET}:{i}" for i in range(n)]
