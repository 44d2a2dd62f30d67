"""The explorer's routes (Starlette): every page, and its JSON twin at the same path with `.json`.

    /                 overview: the report's figures, live
    /traces           the trace list: filters, facets, sort, pages
    /traces/<id>      one trace: blocks beside mementos, issues, answer, alignment, retention
    /models           versions, build times, row counts
    /sql?sql=...      the read-only console (/sql.csv and /sql.jsonl stream the whole result)

Handlers are plain functions, which Starlette runs in its thread pool: each reads through a cursor of
the published snapshot (snapshot.Warehouse.reading). Templates are Jinja2 with autoescape on;
CSS and the icon are served from /static: the pages load nothing from anywhere else, and run no script.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mementos.foundation.errors import WarehouseBusy, WarehouseError, first_line
from mementos.warehouse.explorer import queries, sql_console
from mementos.warehouse.explorer.snapshot import Warehouse
from mementos.warehouse.query import _plain
from mementos.warehouse.trace_view import clip

HERE = Path(__file__).resolve().parent
STATUS = {queries.BadRequest: 400, queries.NotFound: 404, WarehouseBusy: 503}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, digits=0: "–" if v is None else (
        f"{v:,}" if isinstance(v, int) and not digits else f"{v:,.{digits}f}")
    env.filters["pct"] = lambda v, digits=1: "–" if v is None else f"{100 * v:.{digits}f}%"
    env.filters["when"] = lambda v: "–" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")
    env.filters["clip"] = clip
    env.globals.update(trace_url=trace_url, list_url=list_url, sql_url=sql_url, json_url=json_url)
    return env


def trace_url(trace_id: str, params: list[tuple[str, str]] = ()) -> str:
    """A trace's page; `params`: the filters of the list it is reached from (for previous and next)."""
    return f"/traces/{quote(trace_id, safe='')}" + (f"?{urlencode(list(params))}" if params else "")


def list_url(params: list[tuple[str, str]], **changes) -> str:
    """/traces with `params`, each of `changes` replacing (or, None, removing) the parameter of its name."""
    kept = [(k, v) for k, v in params if k not in changes and k != "page"]
    kept += [(k, str(v)) for k, v in changes.items() if v is not None]
    return "/traces" + (f"?{urlencode(kept)}" if kept else "")


def json_url(path: str, query: str = "") -> str:
    """The JSON twin of the page at `path` (decoded, as Starlette gives it) with its query string."""
    twin = "/.json" if path == "/" else quote(path, safe="/") + ".json"
    return twin + (f"?{query}" if query else "")


def sql_url(sql: str, fmt: str = "") -> str:
    return f"/sql{fmt}?{urlencode({'sql': sql})}"


def as_json(value) -> Response:
    """Data as JSON: dataclasses as objects, dates as ISO text, NaN as null (query._plain)."""
    def plain(v):
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return plain({f.name: getattr(v, f.name) for f in dataclasses.fields(v)})
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return _plain(v)

    return Response(json.dumps(plain(value), ensure_ascii=False), media_type="application/json")


class Explorer:
    """The app's state: the warehouse, the console's limits, the templates."""

    def __init__(self, db: str | Path, limits: sql_console.Limits):
        self.warehouse = Warehouse(db)
        self.limits = limits
        self.env = _environment()

    def page(self, request: Request, template: str, data: dict, status: int = 200) -> Response:
        if request.url.path.endswith(".json"):
            return as_json(data.get("json", data))
        data = {k: v for k, v in data.items() if k != "json"}
        html = self.env.get_template(template).render(path=request.url.path, query=str(request.url.query),
                                                      db=str(self.warehouse.db), **data)
        return HTMLResponse(html, status_code=status)

    def error(self, request: Request, exc: BaseException, status: int = 400) -> Response:
        """A one-line error: {"error": ...} for a .json path, else a page saying it."""
        message = first_line(exc) if isinstance(exc, WarehouseError) else f"{type(exc).__name__}: {first_line(exc)}"
        if request.url.path.endswith((".json", ".csv", ".jsonl")):
            return Response(json.dumps({"error": message}, ensure_ascii=False), status_code=status,
                            media_type="application/json")
        html = self.env.get_template("error.html.j2").render(path=request.url.path, query="", status=status,
                                                             message=message, db=str(self.warehouse.db))
        return HTMLResponse(html, status_code=status)

    # -- pages ---------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        with self.warehouse.reading() as (snap, _):
            try:
                figures, problem = snap.cached("overview", lambda: queries.overview(self.warehouse.db)), ""
            except WarehouseError as exc:  # models not built yet: the page says so in one line
                figures, problem = None, first_line(exc)
        return self.page(request, "overview.html.j2", {"r": figures, "problem": problem, "seq": snap.seq,
                                                         "json": {"figures": figures, "problem": problem or None}})

    def traces(self, request: Request) -> Response:
        f = queries.parse_filters(request.query_params)
        page, page_size = queries.page_args(request.query_params)
        with self.warehouse.reading() as (snap, cur):
            result = queries.trace_list(snap, cur, f, page, page_size)
        data = {"result": result, "filters": f, "params": f.params(), "page_size": page_size,
                "json": {"total": result["total"], "page": page, "page_size": page_size,
                         "rows": result["rows"], "facets": result["facets"]}}
        return self.page(request, "traces.html.j2", data)

    def trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        if request.url.path.endswith(".json"):
            trace_id = trace_id.removesuffix(".json")
        f = queries.parse_filters(request.query_params)
        with self.warehouse.reading() as (snap, cur):
            data = queries.trace_page(snap, cur, trace_id)
            around = queries.neighbours(snap, cur, f, trace_id)
        view = data["view"]
        as_data = {"trace_id": view.trace_id, "dataset": view.dataset, "domain": view.domain, "source": view.source,
                   "difficulty": view.difficulty, "status": view.status, "issue_codes": view.issue_codes,
                   "issues": view.issues, "problem": view.problem, "segments": queries.segments(view),
                   "answer": view.answer, "summary": data["summary"], "alignment": data["alignment"],
                   "retention": list(data["retention"].values()), "previous": around["previous"],
                   "next": around["next"], "position": around["position"], "list_total": around["total"]}
        return self.page(request, "trace.html.j2", {**data, "around": around, "filters": f, "params": f.params(),
                                                      "json": as_data})

    def models(self, request: Request) -> Response:
        with self.warehouse.reading() as (_, cur):
            rows = queries.model_list(cur)
        return self.page(request, "models.html.j2", {"models": rows, "json": {"models": rows}})

    def sql(self, request: Request) -> Response:
        sql = request.query_params.get("sql", "")
        if not sql.strip() and not request.url.path.endswith(".json"):
            return self.page(request, "sql.html.j2", {"sql": "", "result": None, "message": "",
                                                      "limits": self.limits, "example": sql_console.EXAMPLE})
        try:
            with self.warehouse.reading() as (_, cur):
                result = sql_console.run(cur, sql, self.limits)
        except WarehouseBusy:
            raise
        except WarehouseError as exc:  # refused or failed: the form again, with the message
            if request.url.path.endswith(".json"):
                return self.error(request, exc, 400)
            return self.page(request, "sql.html.j2", {"sql": sql, "result": None, "message": first_line(exc),
                                                      "limits": self.limits, "example": sql_console.EXAMPLE}, 400)
        return self.page(request, "sql.html.j2", {"sql": sql, "result": result, "message": "", "limits": self.limits,
                                                  "example": sql_console.EXAMPLE, "json": result.to_json()})

    def sql_stream(self, request: Request) -> Response:
        """/sql.csv and /sql.jsonl: every row, streamed; a refusal before the first row is HTTP 400."""
        fmt = "csv" if request.url.path.endswith(".csv") else "jsonl"
        stack = ExitStack()
        try:
            _, cur = stack.enter_context(self.warehouse.reading())
            chunks = sql_console.stream(cur, request.query_params.get("sql", ""), self.limits, fmt)
        except BaseException:
            stack.close()
            raise

        def body():
            with stack:
                yield from chunks

        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
        return StreamingResponse(body(), media_type=media)


def create_app(db: str | Path, sql_time_limit: float = 5.0, max_rows: int = 1000) -> Starlette:
    """The explorer over the warehouse `db`, as an ASGI app."""
    explorer = Explorer(db, sql_console.Limits(sql_time_limit, max_rows))

    def handled(method):
        def endpoint(request: Request) -> Response:
            try:
                return method(request)
            except WarehouseError as exc:
                # a statement that failed is the request's fault; a warehouse that cannot be read is not
                other = 400 if request.url.path.startswith("/sql") else 503
                status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), other)
                return explorer.error(request, exc, status)
            except Exception as exc:  # a bug: one line, never a traceback in the page
                return explorer.error(request, exc, 500)
        return endpoint

    routes = [Route(path, handled(method)) for path, method in (
        ("/", explorer.overview), ("/.json", explorer.overview), ("/index.json", explorer.overview),
        ("/traces", explorer.traces), ("/traces.json", explorer.traces),
        ("/traces/{trace_id:path}", explorer.trace),
        ("/models", explorer.models), ("/models.json", explorer.models),
        ("/sql", explorer.sql), ("/sql.json", explorer.sql),
        ("/sql.csv", explorer.sql_stream), ("/sql.jsonl", explorer.sql_stream))]
    routes += [Route("/favicon.ico", lambda request: PlainTextResponse("", status_code=204)),
               Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")]
    @asynccontextmanager
    async def lifespan(_app):
        yield
        explorer.warehouse.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.explorer = explorer
    return app
