"""`mementos models`: every model, what it is and what state it is in on DuckDB, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

from mementos.warehouse import guard
from mementos.warehouse.engine import existing_objects, model_states
from mementos.warehouse.planner import Freshness
from mementos.warehouse.project import load_project

HEADER = ("model", "kind", "version", "grain", "state", "rows", "last built")
STATE_COLUMN = HEADER.index("state")
RIGHT_ALIGNED = {HEADER.index("rows")}


@dataclass
class ModelInfo:
    name: str
    kind: str
    version: str
    grain: list[str]
    state: Freshness
    reason: str
    rows: int | None
    built_at: datetime | None
    description: str


def list_models(db: str | Path, models_dir: str | Path | None = None) -> list[ModelInfo]:
    with guard.open_warehouse(db) as con:
        project = load_project(models_dir, set(existing_objects(con)))
        states = model_states(con, project)
    out = []
    for name in project.order:
        m, s = project.models[name], states[name]
        reason = s.reason or (f"on request: build --select {name}+" if m.on_request and s.last is None else "")
        out.append(ModelInfo(name, m.kind, m.version, m.grain, s.state, reason,
                             s.last.rows if s.last else None, s.last.built_at if s.last else None, m.description))
    return out


def models_json(db: str | Path, models_dir: str | Path | None = None) -> list[dict]:
    """The `models --json` command: one object per model in dependency order."""
    return [{"model": i.name, "kind": i.kind, "version": i.version, "grain": i.grain, "state": str(i.state),
             "reason": i.reason or None, "rows": i.rows,
             "built_at": i.built_at.isoformat(sep=" ", timespec="seconds") if i.built_at else None,
             "description": i.description} for i in list_models(db, models_dir)]


def models_pieces(db: str | Path, models_dir: str | Path | None = None) -> Iterator[tuple[str, Freshness | None]]:
    """The `models` command's table in pieces, each state word with its Freshness (console.py colours them):
    one line per model in dependency order."""
    infos = list_models(db, models_dir)
    rows = [(i.name, i.kind, i.version, ", ".join(i.grain), i.state + (f" ({i.reason})" if i.reason else ""),
             f"{i.rows:,}" if i.rows is not None else "-",
             i.built_at.strftime("%Y-%m-%d %H:%M:%S") if i.built_at else "-") for i in infos]
    widths = [max(len(str(r[c])) for r in [HEADER, *rows]) for c in range(len(HEADER))]
    yield _line(HEADER, widths) + "\n" + "  ".join("-" * w for w in widths), None
    for info, row in zip(infos, rows):
        line = _line(row, widths)
        at = sum(w + 2 for w in widths[:STATE_COLUMN])  # where the state column starts
        yield "\n" + line[:at], None
        yield line[at:at + len(info.state)], info.state
        yield line[at + len(info.state):], None


def _line(row: tuple, widths: list[int]) -> str:
    return "  ".join(str(v).rjust(w) if c in RIGHT_ALIGNED else str(v).ljust(w)
                     for c, (v, w) in enumerate(zip(row, widths))).rstrip()


def models_report(db: str | Path, models_dir: str | Path | None = None) -> str:
    """The `models` command: one line per model in dependency order."""
    return "".join(text for text, _ in models_pieces(db, models_dir))
