"""mementos: ingest Memento reasoning traces into DuckDB, build models, report and export.

Every command parses its options and calls one library function; the logic lives
in ingest/ and warehouse/.
"""

from __future__ import annotations

import sys

import click

from warehouse.storage import WarehouseError


class _Group(click.Group):
    """Print WarehouseError messages as one line, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WarehouseError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """A DuckDB warehouse for Memento-format reasoning traces (OpenMementos).

    \b
    Typical session:
      mementos ingest microsoft/OpenMementos --db om.duckdb --config all
      mementos build --db om.duckdb
      mementos report --db om.duckdb --out report.html
      mementos sql "SELECT domain, count(*) FROM traces GROUP BY ALL" --db om.duckdb
    """


@main.command()
@click.argument("source")
@click.option("--db", required=True, type=click.Path(dir_okay=False), help="DuckDB warehouse file (created if missing).")
@click.option("--config", "config", type=click.Choice(["default", "full", "all"]), default="default", show_default=True,
              help="Which dataset config to read: default (responses), full (adds sentences and block ranges), or both.")
@click.option("--name", help="Dataset name in the warehouse [default: last part of SOURCE]. Re-ingesting a name replaces it.")
@click.option("--limit", type=click.IntRange(min=0), help="Read at most N rows of each config (for trying things out).")
@click.option("--tokens/--no-tokens", default=True, show_default=True,
              help="Count cl100k_base tokens of every segment (the slow part; --no-tokens leaves n_tokens NULL).")
@click.option("--workers", type=click.IntRange(min=0), help="Worker processes [default: one per core; 0 = in this process].")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def ingest(source, db, config, name, limit, tokens, workers, progress):
    """Stream SOURCE into the warehouse: traces, segments and parse issues.

    SOURCE is a Hugging Face hub id (microsoft/OpenMementos), a local directory
    in the hub layout (README.md card + data/ + full/), or Parquet/JSONL files or
    globs with the same columns. Broken traces are kept and flagged, never dropped.
    An ingest that fails or is interrupted leaves the warehouse as it was.
    """
    from ingest.pipeline import run_ingest
    from warehouse.summaries import format_ingest_summary

    summary = run_ingest(source, db, config=config, name=name, limit=limit, with_tokens=tokens,
                         workers=workers, progress=progress)
    click.echo(format_ingest_summary(summary))


@main.command()
@click.option("--traces", default=3000, show_default=True, type=click.IntRange(min=1), help="Number of traces.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory (hub layout).")
@click.option("--seed", default=0, show_default=True, help="Random seed; the same seed gives byte-identical files.")
def sample(traces, out, seed):
    """Write a synthetic corpus in the hub layout (both configs), shaped like OpenMementos.

    About 1% of its traces are broken in the ways real traces break, so the
    flagging path runs on every demo.
    """
    from warehouse.sample import write_sample

    result = write_sample(out, traces, seed=seed, progress=True)
    click.echo(f"wrote {result.traces} traces ({result.broken} broken) to {out}")


if __name__ == "__main__":
    sys.exit(main())
