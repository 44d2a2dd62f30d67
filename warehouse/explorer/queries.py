"""What the explorer's pages show, as plain values: the trace list with its facets, one trace, the models.

The trace list is filtered, counted and sorted over the trace index: one small row per trace
(labels, status, issue codes, outlier reasons, blocks, tokens, ratio), read once per snapshot from
the base tables and the models into an in-memory DuckDB database, so that a filter or a page never
scans the warehouse's Parquet files. A text search (`q`) reads the trace_words model, and the texts
only where that model cannot answer alone (search.py); its matches are remembered per snapshot
(Snapshot.remembered). A trace's page reads that one trace (trace_view.trace_views,
as `mementos show` and the report do) and its rows of the models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from mementos.foundation.errors import WarehouseError
from mementos.foundation import storage
from mementos.warehouse.explorer import search
from mementos.warehouse.explorer.snapshot import INDEX_POOL, Snapshot
from mementos.warehouse.trace_view import TraceView, trace_views

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
FACET_VALUES = 30  # values listed per facet, most traces first
LABELS = ("dataset", "domain", "source", "difficulty", "status")  # facets that are a column of the index
LISTS = {"issue": "issue_codes", "reason": "reasons"}  # facets that are a list: parameter -> column
RANGES = {"ratio": ("ratio", float), "blocks": ("n_blocks", int)}  # min_X / max_X parameters -> column
SORTS = ("row", "trace_id", "dataset", "domain", "source", "difficulty", "status", "n_blocks", "n_issues",
         "response_chars", "block_tokens", "memento_tokens", "ratio")
COLUMNS = ("trace_id", "dataset", "domain", "source", "difficulty", "status", "n_blocks", "n_issues",
           "issue_codes", "reasons", "block_tokens", "memento_tokens", "ratio", "response_chars")


class BadRequest(WarehouseError):
    """A parameter the explorer cannot use: HTTP 400."""


class NotFound(WarehouseError):
    """No such trace: HTTP 404."""


# ---------------------------------------------------------------------------
# The trace index


class TraceIndex:
    """One row per trace of a snapshot, in an in-memory DuckDB database of its own."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def query(self, sql: str, params=None) -> list[dict]:
        with self.con.cursor() as cur:
            return _rows(cur, sql, params or [])

    def close(self) -> None:
        self.con.close()


def _objects(cur: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in cur.execute(
        "SELECT lower(table_name) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_catalog = current_database()").fetchall()}


def index_sql(objects: set[str]) -> str:
    """The SELECT of the trace index over the base tables, with the models' figures where they are built."""
    tokens = ("c.block_tokens, c.memento_tokens, CAST(c.memento_tokens AS DOUBLE) / nullif(c.block_tokens, 0) AS ratio"
              if "trace_compression" in objects else
              "NULL::BIGINT AS block_tokens, NULL::BIGINT AS memento_tokens, NULL::DOUBLE AS ratio")
    reasons = "string_split(o.reasons, ',') AS reasons" if "outlier_traces" in objects else "NULL::VARCHAR[] AS reasons"
    joins = ("LEFT JOIN trace_compression AS c ON c.trace_id = t.trace_id\n" if "trace_compression" in objects else "")
    joins += "LEFT JOIN outlier_traces AS o ON o.trace_id = t.trace_id\n" if "outlier_traces" in objects else ""
    return f"""
        WITH codes AS (
            SELECT trace_id, list(DISTINCT code ORDER BY code) AS issue_codes
            FROM parse_issues WHERE config = 'default' GROUP BY trace_id
        )
        SELECT t.trace_id, t.dataset, t.source_row, coalesce(t.domain, '(unknown)') AS domain,
               coalesce(t.source, '(unknown)') AS source, coalesce(t.difficulty, '(unknown)') AS difficulty,
               t.status, t.n_blocks, t.n_issues, i.issue_codes, {reasons}, {tokens}, t.response_chars
        FROM traces AS t
        LEFT JOIN codes AS i ON i.trace_id = t.trace_id
        {joins}"""


def trace_index(snap: Snapshot, cur: duckdb.DuckDBPyConnection) -> TraceIndex:
    """The snapshot's trace index, read from the warehouse the first time it is asked for."""
    def build() -> TraceIndex:
        table = cur.sql(index_sql(_objects(cur))).to_arrow_table()
        # its own pool, and its spill files (if ever) where a reader's go: never the working directory
        mem = duckdb.connect(":memory:", config={"memory_limit": INDEX_POOL,
                                                 "temp_directory": str(storage.reader_temp_dir() / "index")})
        mem.register("rows", table)
        mem.execute("CREATE TABLE trace_index AS SELECT * FROM rows ORDER BY dataset, source_row")
        mem.unregister("rows")
        return TraceIndex(mem)

    return snap.cached("index", build)


# ---------------------------------------------------------------------------
# Filters


@dataclass
class Filters:
    """The trace list's filters and order, from the query parameters of /traces (and of a trace page)."""
    labels: dict[str, list[str]] = field(default_factory=dict)
    lists: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, float] = field(default_factory=dict)  # 'min_ratio' -> 0.2, ...
    q: str = ""
    sort: str = "row"
    descending: bool = False

    def params(self) -> list[tuple[str, str]]:
        """The filters as query parameters (links keep the list a page came from)."""
        out = [(name, v) for name, values in self.labels.items() for v in values]
        out += list(self.lists.items()) + [(name, _number(v)) for name, v in self.ranges.items()]
        out += [("q", self.q)] if self.q else []
        if self.sort != "row" or self.descending:
            out.append(("sort", ("-" if self.descending else "") + self.sort))
        return out

    @property
    def active(self) -> bool:
        return bool(self.labels or self.lists or self.ranges or self.q)


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def parse_filters(multi) -> Filters:
    """Filters from a multi-dict of query parameters (Starlette's QueryParams); unknown parameters are ignored."""
    f = Filters()
    for name in LABELS:
        values = [v for v in multi.getlist(name) if v != ""]
        if values:
            f.labels[name] = values
    for name in LISTS:
        if multi.get(name):
            f.lists[name] = multi.get(name)
    for name, (_, kind) in RANGES.items():
        for bound in ("min", "max"):
            raw = multi.get(f"{bound}_{name}", "")
            if raw.strip():
                try:
                    f.ranges[f"{bound}_{name}"] = kind(raw)
                except ValueError:
                    raise BadRequest(f"{bound}_{name}={raw!r} is not a {'whole ' if kind is int else ''}number; "
                                     f"give e.g. {bound}_{name}={'3' if kind is int else '0.2'}") from None
    f.q = multi.get("q", "").strip()
    sort = multi.get("sort", "row") or "row"
    f.descending, f.sort = sort.startswith("-"), sort.lstrip("-")
    if f.sort not in SORTS:
        raise BadRequest(f"sort={sort!r} is not a column the list sorts by: use one of {', '.join(SORTS)} "
                         f"(with a leading - for descending)")
    return f


def page_args(multi) -> tuple[int, int]:
    """(page, page_size) from the query parameters: page from 1, page_size from 1 to MAX_PAGE_SIZE."""
    out = []
    for name, default, top in (("page", 1, None), ("page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)):
        raw = multi.get(name, "") or str(default)
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1 or (top is not None and value > top):
            limit = f"from 1 to {top:,}" if top else "1 or more"
            raise BadRequest(f"{name}={raw!r} must be a whole number {limit}")
        out.append(value)
    return out[0], out[1]


def _where(f: Filters, matched: bool, skip: str = "") -> tuple[str, list]:
    """The WHERE clause (names from the fixed lists above, values as parameters) and its parameters.
    `matched`: the text search's ids are in the cursor's temporary table `matches` (_matching)."""
    clauses, params = [], []
    for name, values in f.labels.items():
        if name != skip:
            clauses.append(f"{name} IN ({', '.join('?' for _ in values)})")
            params += values
    for name, value in f.lists.items():
        if name != skip:
            clauses.append(f"list_contains({LISTS[name]}, ?)")
            params.append(value)
    for key, value in f.ranges.items():
        bound, name = key.split("_", 1)
        clauses.append(f"{RANGES[name][0]} {'>=' if bound == 'min' else '<='} ?")
        params.append(value)
    if matched:
        clauses.append("trace_id IN (SELECT trace_id FROM matches)")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _order(f: Filters) -> str:
    direction = "DESC" if f.descending else "ASC"
    if f.sort == "row":
        return f"dataset {direction}, source_row {direction}"
    return f"{f.sort} {direction} NULLS LAST, dataset, source_row"


def text_matches(snap: Snapshot, cur: duckdb.DuckDBPyConnection, q: str) -> list[str] | None:
    """The trace ids that `q` finds (search.search: every word of it, or a quoted phrase); None when there
    is no `q`. The trace_words model answers where it can."""
    if not q:
        return None

    def locate(ids: list[str]) -> list[tuple[str, str, int]]:
        with trace_index(snap, cur).con.cursor() as mem:
            return mem.execute("SELECT trace_id, dataset, source_row FROM trace_index "
                               "WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))", [ids]).fetchall()

    stale = snap.cached("unindexed", lambda: search.unindexed(cur))
    return snap.remembered("search", q, lambda: search.search(cur, q, stale, locate))


# ---------------------------------------------------------------------------
# Pages


def _matching(mem: duckdb.DuckDBPyConnection, matches: list[str] | None) -> bool:
    """Put the text search's ids in the temporary table `matches` of the trace index cursor `mem` (its own
    connection): the queries of a page read them there, where passing the list to each query converted it
    every time."""
    if matches is not None:
        mem.execute("CREATE TEMP TABLE matches AS SELECT unnest(?::VARCHAR[]) AS trace_id", [matches])
    return matches is not None


def trace_list(snap: Snapshot, cur: duckdb.DuckDBPyConnection, f: Filters, page: int, page_size: int) -> dict:
    """One page of the filtered, sorted trace list: {"total", "rows", "facets", ...}."""
    index = trace_index(snap, cur)
    matches = text_matches(snap, cur, f.q)
    with index.con.cursor() as mem:
        matched = _matching(mem, matches)
        where, params = _where(f, matched)
        [(total,)] = mem.execute(f"SELECT count(*) FROM trace_index {where}", params).fetchall()
        rows = _rows(mem, f"SELECT {', '.join(COLUMNS)} FROM trace_index {where} ORDER BY {_order(f)} "
                          f"LIMIT ? OFFSET ?", params + [page_size, (page - 1) * page_size])
        key = tuple(p for p in f.params() if p[0] != "sort")  # the order changes no count
        counted = snap.remembered("facets", key, lambda: facets(mem, f, matched))
    return {"total": total, "page": page, "page_size": page_size, "pages": max(1, -(-total // page_size)),
            "rows": rows, "facets": counted}


def facets(mem: duckdb.DuckDBPyConnection, f: Filters, matched: bool) -> dict[str, list[dict]]:
    """Traces per value of each facet, under every filter but the facet's own (so its other values show).
    The label facets without a filter of their own share one pass (GROUPING SETS); each other facet has its own."""
    out: dict[str, list[dict]] = {name: [] for name in LABELS + tuple(LISTS)}
    shared = [name for name in LABELS if name not in f.labels]
    if shared:
        where, params = _where(f, matched)
        flags = ", ".join(f"grouping({name})" for name in shared)
        sets = ", ".join(f"({name})" for name in shared)
        rows = mem.execute(f"SELECT {', '.join(shared)}, {flags}, count(*) FROM trace_index {where} "
                           f"GROUP BY GROUPING SETS ({sets})", params).fetchall()
        for row in rows:
            at = row[len(shared):2 * len(shared)].index(0)  # the set this row counts
            if row[at] is not None:
                out[shared[at]].append({"value": row[at], "traces": row[-1]})
    for name in [n for n in LABELS if n in f.labels] + list(LISTS):
        where, params = _where(f, matched, skip=name)
        value = f"unnest({LISTS[name]})" if name in LISTS else name
        out[name] = _rows(mem, f"SELECT value, count(*) AS traces FROM (SELECT {value} AS value FROM trace_index "
                                f"{where}) WHERE value IS NOT NULL GROUP BY value", params)
    for name, values in out.items():
        values.sort(key=lambda v: (-v["traces"], str(v["value"])))
        del values[FACET_VALUES:]
    return out


def neighbours(snap: Snapshot, cur: duckdb.DuckDBPyConnection, f: Filters, trace_id: str) -> dict:
    """The previous and next trace of the list `f` around `trace_id`, its position and the list's length.
    The list's order is remembered (Snapshot.remembered): stepping through it sorts it once."""
    def order() -> list[str]:
        matches = text_matches(snap, cur, f.q)
        with trace_index(snap, cur).con.cursor() as mem:
            where, params = _where(f, _matching(mem, matches))
            return [tid for (tid,) in mem.execute(f"SELECT trace_id FROM trace_index {where} ORDER BY {_order(f)}",
                                                  params).fetchall()]

    ids = snap.remembered("order", tuple(f.params()), order)
    try:
        at = ids.index(trace_id)
    except ValueError:  # not in this list (a link from elsewhere): no neighbours
        return {"position": None, "total": len(ids), "previous": None, "next": None}
    return {"position": at + 1, "total": len(ids), "previous": ids[at - 1] if at else None,
            "next": ids[at + 1] if at + 1 < len(ids) else None}


def trace_page(snap: Snapshot, cur: duckdb.DuckDBPyConnection, trace_id: str) -> dict:
    """Everything a trace's page shows: its view (blocks beside mementos, issues, answer), its row of the
    trace index, its full-config alignment and each memento's retention."""
    views = trace_views(cur, [trace_id], root=snap.root)
    if trace_id not in views:
        raise NotFound(f"no trace {trace_id!r} in this warehouse; the trace list (/traces) has every trace id")
    view = views[trace_id]
    objects = _objects(cur)
    summary = trace_index(snap, cur).query(f"SELECT {', '.join(COLUMNS)} FROM trace_index WHERE trace_id = ?",
                                           [trace_id])
    alignment = _rows(cur, "SELECT link, full_trace_id, aligned, disagreement, first_disagreeing_block, "
                           "blocks_compared, blocks_agreeing, full_status FROM full_alignment WHERE trace_id = ?",
                      [trace_id]) if "full_alignment" in objects else []
    retention = _rows(cur, "SELECT block_idx, block_numbers, numbers_kept, numbers_kept_fraction, "
                           "block_content_words, content_words_kept, word_recall FROM memento_retention "
                           "WHERE trace_id = ? ORDER BY block_idx", [trace_id]) if "memento_retention" in objects else []
    return {"view": view, "summary": summary[0] if summary else {}, "alignment": alignment[0] if alignment else None,
            "retention": {r["block_idx"]: r for r in retention}}


def segments(view: TraceView) -> list[dict]:
    """The trace's segments in order, as the segments table names them: block and summary per block, then
    the answer; an unsegmented trace's reasoning, then the answer."""
    out = []
    if view.reasoning is not None:
        out.append({"kind": "reasoning", "index": None, "text": view.reasoning, "n_chars": len(view.reasoning),
                    "n_tokens": view.reasoning_tokens})
    for p in view.pairs:
        out.append({"kind": "block", "index": p.block_idx, "text": p.block, "n_chars": p.block_chars,
                    "n_tokens": p.block_tokens})
        out.append({"kind": "summary", "index": p.block_idx, "text": p.memento, "n_chars": p.memento_chars,
                    "n_tokens": p.memento_tokens, "ratio_tokens": p.ratio_tokens})
    if view.answer is not None:
        out.append({"kind": "answer", "index": None, "text": view.answer, "n_tokens": view.answer_tokens})
    return out


def _rows(cur: duckdb.DuckDBPyConnection, sql: str, params) -> list[dict]:
    result = cur.execute(sql, params)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def model_list(cur: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every model of the project: kind, version, its last build (version, time, rows) and its state now."""
    from mementos.warehouse.engine import existing_objects, last_builds, model_states
    from mementos.warehouse.project import load_project

    objects = existing_objects(cur)
    project = load_project(None, set(objects))
    states = model_states(cur, project)
    lasts = last_builds(cur, objects)
    out = []
    for name in project.order:
        last = lasts.get(name)
        out.append({"name": name, "kind": project.models[name].kind, "version": project.models[name].version,
                    "built_version": last.version if last else None, "built_at": last.built_at if last else None,
                    "rows": last.rows if last else None, "state": str(states[name].state),
                    "reason": states[name].reason})
    return out


def overview(db) -> dict:
    """The report's figures, live: its sections (warehouse/report_sections.py) on a connection of its own to
    the published catalog (the report's queries set options that a locked-down snapshot refuses)."""
    from mementos.warehouse import report, report_sections
    from mementos.foundation.catalog import data_version

    with storage.connect(db, read_only=True) as con:
        objects = report.check_ready(con, str(db))
        summary = report_sections.overview(con, objects)
        outliers = report_sections.outliers(con, 10)
        return {"totals": summary.totals, "datasets": summary.datasets, "domains": summary.domains,
                "issues": summary.issues, "alignment": summary.alignment,
                "card": report_sections.card_comparison(con).rows,
                "retention": report_sections.retention(con).summary,
                "outlier_total": outliers.total, "outlier_reasons": outliers.reasons, "outliers": outliers.top,
                "data_version": data_version(con), "nothing_to_analyse": summary.nothing_to_analyse}
