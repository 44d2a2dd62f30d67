"""The saved queries that ship with mementos (sql/queries/NAME.sql), by name: `mementos sql --query NAME`
runs one from any directory, installed or in a clone; `mementos sql --list-queries` lists them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mementos.foundation.errors import WarehouseError
from mementos.foundation.resources import resource_dir

_FIRST_SENTENCE = re.compile(r"^(.+?[.?])(?:\s|$)")


@dataclass(frozen=True)
class SavedQuery:
    name: str
    path: Path
    description: str  # the first sentence of the file's leading comment


def _description(text: str) -> str:
    comment = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        comment.append(line.removeprefix("--").strip())
    joined = " ".join(part for part in comment if part)
    match = _FIRST_SENTENCE.match(joined)
    return match.group(1) if match else joined


def saved_queries() -> dict[str, SavedQuery]:
    """Every shipped query, by name (the file's stem), in name order."""
    paths = sorted(resource_dir("queries").glob("*.sql"))
    return {p.stem: SavedQuery(p.stem, p, _description(p.read_text(encoding="utf-8"))) for p in paths}


def saved_query(name: str) -> SavedQuery:
    """The shipped query called `name`; a WarehouseError naming the others when there is none."""
    queries = saved_queries()
    if name not in queries:
        raise WarehouseError(f"no saved query is called {name!r}: the saved queries are {', '.join(queries)} "
                             "(mementos sql --list-queries says what each shows)")
    return queries[name]


def queries_listing() -> str:
    """One line per shipped query: its name and what it shows."""
    queries = saved_queries().values()
    width = max(len(q.name) for q in queries)
    return "\n".join(f"{q.name:<{width}}  {q.description}" for q in queries)
