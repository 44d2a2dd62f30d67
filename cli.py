"""mementos: ingest Memento reasoning traces into DuckDB, build models, report and export.

Every command parses its options and calls one library function; the logic lives
in ingest/ and warehouse/.
"""

from __future__ import annotations

import functools
import sys

import click

from mementos.foundation.errors import WarehouseError
from mementos.warehouse.export.spec import DEFAULT_SPLITS, ExportFormat, ExportKind, ExportSpec, splits_text


def _version(ctx, _param, value):
    if not value or ctx.resilient_parsing:
        return
    from importlib import metadata

    def version(package):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    click.echo(f"mementos {version('mementos-warehouse')} (duckdb {version('duckdb')})")
    ctx.exit()


def db_option(help: str = "DuckDB warehouse file.", dir_okay: bool = False):
    """--db, declared once: every command reads the warehouse from it, or from $MEMENTOS_DB."""
    return click.option("--db", required=True, envvar="MEMENTOS_DB", show_envvar=True,
                        type=click.Path(dir_okay=dir_okay), help=help)


def models_options(command):
    """--models DIR (or $MEMENTOS_MODELS) and --no-bundled-models, declared once for every command that
    builds or reads models; the command receives them as one `models_dir` (warehouse.models.model_dirs)."""

    @functools.wraps(command)
    def with_models_dir(*args, models=None, bundled_models=True, **kwargs):
        from mementos.warehouse.models import model_dirs

        return command(*args, models_dir=model_dirs(models, bundled=bundled_models), **kwargs)

    with_models_dir = click.option(
        "--no-bundled-models", "bundled_models", flag_value=False, default=True,
        help="Use only the --models directory, not the models that ship with mementos.")(with_models_dir)
    return click.option(
        "--models", metavar="DIR", envvar="MEMENTOS_MODELS", show_envvar=True,
        help="A directory of your own models (NAME.sql files), used on top of the bundled models: a model "
             "of yours with the same name as a bundled one replaces it.")(with_models_dir)


quiet_option = click.option("--quiet", "-q", is_flag=True,
                            help="Print nothing but errors: no progress bar, notes or closing summary "
                                 "(--json still prints its object).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _say(text: str, err: bool = False) -> None:
    """Print a message for people. Data in it (dataset names, paths, trace ids, DuckDB's errors quoting
    values) has its control characters escaped, so that it cannot drive the terminal."""
    from mementos.warehouse.console import escape_controls

    click.echo(escape_controls(text), err=err)


def _notes(quiet: bool):
    """Where a command's notes go: stderr, or nowhere with --quiet."""
    return (lambda line: None) if quiet else (lambda line: _say(line, err=True))


def _print_json(value) -> None:
    import json

    click.echo(json.dumps(value, ensure_ascii=False, indent=1, default=str))


class _Group(click.Group):
    """Print WarehouseError messages as one line, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WarehouseError as exc:
            from mementos.warehouse.console import escape_controls

            raise click.ClickException(escape_controls(str(exc))) from None
        except Exception as exc:
            from mementos.foundation.storage import out_of_memory

            if (error := out_of_memory(exc) or _damaged_file(exc)) is None:
                raise
            raise click.ClickException(str(error)) from None


def _damaged_file(exc: Exception) -> str | None:
    """A Parquet file of the warehouse that DuckDB cannot read (corrupted in place, same size) as one line."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if type(exc).__module__.lstrip("_").startswith("duckdb") and ".parquet" in first:
        return (f"a data file cannot be read ({first}); the warehouse's files are damaged: ingest the dataset "
                f"that file belongs to again (`mementos ingest SOURCE --db DB --name NAME`)")
    return None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Print the version of mementos (and of DuckDB) and exit.")
def main():
    """A DuckDB warehouse for Memento-format reasoning traces (OpenMementos).

    \b
    Typical session:
      mementos ingest microsoft/OpenMementos --db om.duckdb --config all
      mementos build --db om.duckdb
      mementos report --db om.duckdb --out report.html
      mementos sql "SELECT domain, count(*) FROM traces GROUP BY ALL" --db om.duckdb

    \b
    Set MEMENTOS_DB once instead of passing --db to every command:
      export MEMENTOS_DB=om.duckdb
    """
    import os

    if os.environ.get("MEMENTOS_MEMORY_LIMIT"):  # judged once here, not as a DuckDB error in every command
        from mementos.foundation.storage import check_memory_limit

        check_memory_limit()


@main.command()
@click.argument("source")
@db_option("DuckDB warehouse file (created if missing).")
@click.option("--config", "config", type=click.Choice(["default", "full", "all"]), default="default", show_default=True,
              help="Which dataset config to read: default (responses), full (adds sentences and block ranges), or both.")
@click.option("--name", help="Dataset name in the warehouse [default: last part of SOURCE]. Re-ingesting a name updates "
                              "it: only new and changed source files are read, vanished ones are removed.")
@click.option("--limit", type=click.IntRange(min=1), help="Read at most N rows of each config (for trying things out): "
                                                          "re-reads from the first row, as --full-refresh does.")
@click.option("--full-refresh", is_flag=True, help="Re-read every source file and number the traces from 0 "
                                                    "(trace ids may then name other traces than before).")
@click.option("--tokens/--no-tokens", default=True, show_default=True,
              help="Count cl100k_base tokens of every segment (the slow part; --no-tokens leaves n_tokens NULL).")
@click.option("--workers", type=click.IntRange(min=0),
              help="Worker processes [default: one per core, none when at most 2,000 rows are read; "
                   "0 = in this process].")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar on stderr [default: only when stderr is a terminal].")
@click.option("--format", "shape", type=click.Choice(["openmementos", "columns", "chat", "sharegpt", "export"]),
              help="The input shape [default: detected from the columns: messages = chat, conversations = "
                   "sharegpt, messages with trace_id and spans = export, else openmementos].")
@click.option("--columns", metavar="TARGET=COLUMN,...",
              help="Map columns onto the trace: problem=question,response=output (also domain, source, difficulty).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False),
              help="A TOML (or .yaml) file with format, columns, keep, field_messages, field_thinking, "
                   "message_property_mappings (a message's role and content keys, as axolotl's).")
@click.option("--keep", metavar="COLUMN,...", help="Keep these columns as the trace's metadata (JSON, in traces).")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="local: worker processes on this machine. spark: a Spark task per source file, writing into "
                   "PATH.data, which every executor must see (docs/spark-ingest.md); a rerun after a failure "
                   "reads only the files not finished.")
@click.option("--spark-master", metavar="URL",
              help="With --engine spark: the Spark master URL (local[*], spark://host:7077, yarn, k8s://...) "
                   "[default: spark-submit's master, else local[*]].")
@quiet_option
@json_option
def ingest(source, db, config, name, limit, full_refresh, tokens, workers, progress, shape, columns, mapping, keep,
           engine, spark_master, quiet, as_json):
    """Stream SOURCE into the warehouse: traces, segments and parse issues.

    SOURCE is a Hugging Face hub id (microsoft/OpenMementos), a local directory
    in the hub layout (README.md card + data/ + full/), or Parquet/JSONL files or
    globs with the same columns, or chat logs (messages, ShareGPT conversations)
    and any columns mapped with --columns. Broken traces are kept and flagged,
    rows that cannot become a trace are counted and listed in rejected_rows.
    Ingesting into an existing --name reads only the source files that are new or
    changed (same path, size and content hash: unchanged, kept with their trace ids).
    An ingest that fails or is interrupted leaves the warehouse as it was.
    """
    from mementos.ingest.adapters import input_spec
    from mementos.ingest.pipeline import run_ingest
    from mementos.warehouse.summaries import format_ingest_summary

    if progress is None:
        progress = _stderr_is_terminal() and not quiet
    summary = run_ingest(source, db, config=config, name=name, limit=limit, with_tokens=tokens,
                         workers=workers, progress=progress, full_refresh=full_refresh,
                         spec=input_spec(format=shape, columns=columns, mapping=mapping, keep=keep),
                         engine=engine, spark_master=spark_master)
    if as_json:
        _print_json(summary.to_dict())
    elif not quiet:
        _say(format_ingest_summary(summary))


@main.command()
@click.option("--traces", default=3000, show_default=True, type=click.IntRange(min=1), help="Number of traces.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory (hub layout).")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed gives byte-identical files.")
@click.option("--overwrite", is_flag=True, help="Replace a sample with other parameters already in --out.")
@click.option("--format", "fmt", type=click.Choice(["openmementos", "chat", "sharegpt", "columns"]),
              default="openmementos", show_default=True,
              help="The input shape: the OpenMementos hub layout, or one train.jsonl of chat messages, ShareGPT "
                   "conversations or columns of other names (its README.md says how to ingest it).")
@quiet_option
def sample(traces, out, seed, overwrite, fmt, quiet):
    """Write a synthetic corpus in the hub layout (both configs), shaped like OpenMementos.

    About 1% of its traces are broken in the ways real traces break, so the
    flagging path runs on every demo.
    """
    from mementos.sample import write_sample_as

    result = write_sample_as(out, traces, fmt, seed=seed, progress=_stderr_is_terminal() and not quiet,
                             overwrite=overwrite)
    if not quiet:
        _say(f"wrote {result.traces} traces ({result.broken} broken) to {out}")


@main.command()
@db_option("DuckDB warehouse file (with --engine spark also its Parquet root: a directory or a URI).", dir_okay=True)
@click.option("--select", "select", multiple=True, metavar="[+]NAME[+]",
              help="Only this model (NAME), it and everything downstream of it (NAME+), or it and everything "
                   "it reads (+NAME). Repeatable.")
@click.option("--full-refresh", is_flag=True, help="Rebuild the selected models even when they are fresh.")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="duckdb: tables in the DuckDB file. spark: the same models transpiled to Spark SQL, "
                   "written as Parquet under PATH.data/models/ (every selected model is rebuilt; warehouse.md (Spark)).")
@click.option("--spark-master", default="local[*]", show_default=True,
              help="With --engine spark: the Spark master URL (local[*], spark://host:7077, yarn, k8s://...).")
@models_options
@quiet_option
@json_option
def build(db, select, full_refresh, engine, spark_master, quiet, as_json, models_dir):
    """Build the SQL models (the bundled ones, and yours with --models) into the warehouse, in dependency order.

    Only models that are new, changed (their SQL, ignoring layout and comments,
    or their version), fed by newly ingested data, or downstream of one of
    those are rebuilt. Each goes into a new table that must pass the model's
    audits before it replaces the old one, in one transaction; a failing audit
    keeps the old table, prints the offending rows, and exits with status 1.
    Every build is recorded in the `model_builds` table.
    """
    echo = _notes(quiet) if _stderr_is_terminal() and not quiet else None
    if engine == "spark":
        from mementos.warehouse.spark.engine import build as run_spark_build

        report = run_spark_build(db, select=list(select) or None, models_dir=models_dir, master=spark_master,
                                 echo=echo, full_refresh=full_refresh)
    else:
        from mementos.warehouse.engine import build as run_build

        report = run_build(db, select=list(select) or None, full_refresh=full_refresh, models_dir=models_dir,
                           echo=echo)
    if as_json:
        _print_json(report.to_dict())
    elif not quiet or not report.ok:  # a failed build is an error: --quiet prints it, on stderr
        from mementos.warehouse.console import print_styled

        print_styled(report.pieces(), file=sys.stderr if quiet else None)
    if not report.ok:
        raise SystemExit(1)


@main.command()
@db_option("DuckDB warehouse file (with --engine spark also its Parquet root: a directory or a URI).", dir_okay=True)
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="spark: which models transpile to Spark SQL (and if not, the function), and their last Spark build.")
@models_options
@json_option
def models(db, engine, as_json, models_dir):
    """List the models: kind, version, grain, state, rows and last build.

    State is `fresh` (built from its current SQL and data), `stale` (with the
    reason) or `never built`. `mementos build` brings stale models up to date.
    """
    if engine == "spark":
        if as_json:
            raise click.UsageError("--json lists the DuckDB models; it does not combine with --engine spark")
        from mementos.warehouse.spark.engine import transpile_report

        _say(transpile_report(db, models_dir=models_dir))
        return
    if as_json:
        from mementos.warehouse.model_list import models_json

        _print_json({"db": db, "models": models_json(db, models_dir)})
        return
    from mementos.warehouse.console import print_styled
    from mementos.warehouse.model_list import models_pieces

    print_styled(models_pieces(db, models_dir))


def _list_queries(ctx, _param, value) -> None:
    """--list-queries: print them before --db is asked for, and exit."""
    if value and not ctx.resilient_parsing:
        from mementos.warehouse.saved_queries import queries_listing

        click.echo(queries_listing())
        ctx.exit()


@main.command()
@click.argument("query", required=False)
@db_option()
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format.")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Read the query from this file instead of QUERY; `-` reads it from stdin.")
@click.option("--query", "saved", metavar="NAME",
              help="Run the saved query NAME that ships with mementos (e.g. card_comparison); "
                   "--list-queries lists them.")
@click.option("--list-queries", is_flag=True, expose_value=False, is_eager=True, callback=_list_queries,
              help="List the saved queries, with what each shows, and exit.")
@click.option("--max-rows", type=click.IntRange(min=0), metavar="N",
              help="Print at most N rows of each result; 0 for all [default: 40 in the table format, "
                   "all in csv and json].")
@click.option("--write", is_flag=True,
              help="Allow statements that change the warehouse or write files (takes the writer lock).")
def sql(query, db, fmt, file, saved, max_rows, write):
    """Run an ad hoc SQL QUERY against the warehouse and print its rows.

    \b
    Several statements run in order, and each result is printed. Without
    --write nothing on disk changes: the warehouse is opened read-only, no file
    outside it can be read or written, and COPY, EXPORT DATABASE, ATTACH and
    INSTALL are refused. Rows are streamed: the table format shows the first 40
    and says how many were left out; csv and json write every row with bounded
    memory, e.g. to a pipe. Values are printed as DuckDB prints them; the table
    format shows control characters in them as escapes (\\x1b).
    Without QUERY or --file, the query is read from stdin when that is not a terminal.
    Tables to query: the base tables (traces, segments, parse_issues, ...), the
    models (see `mementos models`) and model_builds.
    Examples:
      mementos sql "SELECT domain, median_ratio_chars FROM domain_compression" --db om.duckdb
      echo "SELECT count(*) FROM traces" | mementos sql --db om.duckdb
      mementos sql --query card_comparison --db om.duckdb
    """
    from mementos.warehouse.query import write_sql
    from mementos.warehouse.saved_queries import saved_query

    if saved is not None:
        if query is not None or file is not None:
            raise click.UsageError("give one of QUERY, --file and --query")
        file = saved_query(saved).path
    elif query is None and file is None and not sys.stdin.isatty():  # `echo "SELECT 1" | mementos sql`
        file = "-"
    try:
        write_sql(db, query, sys.stdout, fmt=fmt, file=file, write=write, max_rows=max_rows)
        sys.stdout.flush()
    except BrokenPipeError:  # `mementos sql ... | head`: the reader has all it wants
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@main.command()
@db_option()
@click.option("--out", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (replaced if it exists).")
@click.option("--trace", "traces", multiple=True, metavar="TRACE_ID",
              help="Also show this trace side by side (e.g. OpenMementos:17). Repeatable.")
@click.option("--outliers", default=10, show_default=True, type=click.IntRange(min=0),
              help="How many of the top outlier traces to list, each with its trace view.")
@models_options
@quiet_option
def report(db, out, traces, outliers, quiet, models_dir):
    """Write one self-contained HTML report of the warehouse.

    \b
    It contains: an overview (datasets, ingest runs, traces per domain, flagged
    traces by parse-issue code); this warehouse's figures beside the
    OpenMementos card's, with the difference; six plots (ratio per domain,
    blocks per trace, block vs memento length, trace-level compression, peak
    context against k in the inference simulation, ratio by block position);
    memento retention; the top outlier traces
    with their reasons; trace views (each block beside its memento, tokens and
    ratio per pair, then the answer) for a typical trace of each domain, each
    listed outlier and every --trace; and the model versions and fingerprints.

    Stale models are built first (a line says which). The file opens from disk
    with no network: CSS and images are inline, there is no script, and every
    text from the data is escaped.
    """
    from mementos.warehouse.report import write_report

    result = write_report(db, out, traces=traces, outliers=outliers, models_dir=models_dir, echo=_notes(quiet))
    if not quiet:
        _say(f"wrote {result.out} ({result.bytes / 1e6:.1f} MB, {result.views} trace views) in {result.seconds:.1f} s")


@main.command()
@click.argument("trace_id")
@db_option()
@click.option("--pager/--no-pager", default=True, show_default=True,
              help="On a terminal, page the output (as git does: $PAGER, else less -FRX); never when stdout "
                   "is not a terminal.")
def show(trace_id, db, pager):
    """Print trace TRACE_ID side by side in the terminal: each block beside its memento.

    TRACE_ID is `dataset:row` (e.g. OpenMementos:17; `mementos sql "SELECT
    trace_id FROM traces LIMIT 5"` lists some). Shows the problem, then every
    block with its memento, their cl100k_base tokens and the memento/block
    ratio (in tokens, and in chars), then the answer: the report's trace view
    without a browser. Reads the warehouse only; works before any build.
    """
    from mementos.warehouse.show import show as show_trace

    show_trace(db, trace_id, pager=pager and sys.stdout.isatty())


def parse_splits(text: str) -> dict[str, float]:
    """--split's `train=0.98,validation=0.01,test=0.01` -> {name: fraction} in the given order (the export
    checks the names and that the fractions add up to 1)."""
    splits: dict[str, float] = {}
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        try:
            fraction = float(value) if eq else None
        except ValueError:
            fraction = None
        if fraction is None:
            raise WarehouseError(f"--split {text}: each part is NAME=FRACTION with NAME of letters, digits, _ "
                                 f"or - and FRACTION between 0 and 1 (e.g. {splits_text(DEFAULT_SPLITS)}); not "
                                 f"{part.strip()!r}")
        if name.strip() in splits:
            raise WarehouseError(f"--split {text}: split {name.strip()!r} is named twice")
        splits[name.strip()] = fraction
    return splits


def parse_outlier_reasons(text: str | None) -> bool | tuple[str, ...]:
    """--exclude-outliers: absent (False), given alone ("all": True), or comma-separated reasons."""
    if text is None or text == "all":
        return text == "all"
    return tuple(r.strip() for r in text.split(",") if r.strip())


@main.command()
@db_option()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; another than 127.0.0.1 lets other machines read the warehouse.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="The port to listen on (0: any free one, printed).")
@click.option("--sql-time-limit", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              metavar="SECONDS", help="The SQL console stops a statement after this long.")
@click.option("--max-rows", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Rows the SQL console shows (its CSV and JSON Lines links stream all of them).")
def serve(db, host, port, sql_time_limit, max_rows):
    """Explore the warehouse in the browser: a local, read-only web app.

    \b
    Pages (each has a JSON twin: the same path with .json):
      /              the report's figures, live
      /traces        every trace: filters, facet counts, text search, sort, pages
      /traces/ID     one trace: blocks beside mementos, parse issues, answer,
                     full-config alignment, retention; previous and next trace
      /models        model versions, build times, row counts
      /sql?sql=...   one read-only statement, with a time limit and a row cap

    Every request reads the last published snapshot: an ingest or build running
    meanwhile never breaks a page, and the next request sees what it wrote.
    Ctrl-C stops the server.
    """
    from mementos.warehouse.explorer import serve as serve_explorer

    serve_explorer(db, host=host, port=port, sql_time_limit=sql_time_limit, max_rows=max_rows, echo=_say)


@main.command()
@click.argument("kind", type=click.Choice([k.value for k in ExportKind]))
@db_option()
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output directory: one file per split, README.md (dataset card) and manifest.json; files an "
                   "earlier export listed are replaced or removed, anything else stops the export (see --overwrite).")
@click.option("--format", "fmt", type=click.Choice([f.value for f in ExportFormat]), default=ExportFormat.JSONL.value,
              show_default=True)
@click.option("--split", "split", default=splits_text(DEFAULT_SPLITS), show_default=True,
              help="Split names and fractions (adding up to 1); a problem goes to one split only.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split assignment; same seed, same files.")
@click.option("--domain", help="Only traces of this domain ('(unknown)' for traces without one).")
@click.option("--max-tokens", type=click.IntRange(min=1),
              help="Leave out examples longer than N cl100k tokens (the whole example as written; see README.md (Export)).")
@click.option("--include-flagged", is_flag=True, help="Keep flagged traces (with whatever the parser recovered).")
@click.option("--exclude-outliers", "exclude_outliers", is_flag=False, flag_value="all", default=None,
              metavar="[REASONS]",
              help="Leave out the traces in outlier_traces: all of them, or those with one of REASONS (comma-separated, "
                   "e.g. ratio_high,duplicate).")
@click.option("--overwrite", is_flag=True, help="Delete whatever else is in --out, so it holds only this export.")
@click.option("--allow-empty", is_flag=True, help="Write the files even when every example is left out (else an error).")
@models_options
@quiet_option
def export(kind, db, out, fmt, split, seed, domain, max_tokens, include_flagged, exclude_outliers, overwrite,
           allow_empty, quiet, models_dir):
    """Write the KIND training set as chat messages, one file per split.

    \b
    Kinds (README.md, "Export", describes each):
      memento     the problem, then the response with its block and memento markup
      compressed  the problem, then every memento (blocks evicted) and the answer
      summarize   one example per block: instruction + block, then its memento
      plain       the problem, then the blocks without any memento markup, and the answer
    Splits are grouped by problem (near-duplicates together), exact duplicate
    traces are written once, flagged traces are left out unless --include-flagged;
    what was left out, and why, is printed. Stale export models are built first.
    Files are written aside and renamed into place when complete; DIR then holds
    this export only (split files, README.md dataset card, manifest.json).
    """
    from mementos.warehouse.export import export as run_export

    spec = ExportSpec(kind, out, fmt=fmt, splits=parse_splits(split), seed=seed, domain=domain,
                      max_tokens=max_tokens, include_flagged=include_flagged,
                      exclude_outliers=parse_outlier_reasons(exclude_outliers), overwrite=overwrite,
                      allow_empty=allow_empty)
    result = run_export(db, spec, models_dir=models_dir, echo=_notes(quiet),
                        progress=_stderr_is_terminal() and not quiet)
    if not quiet:
        _say(result.format())


if __name__ == "__main__":
    sys.exit(main())
