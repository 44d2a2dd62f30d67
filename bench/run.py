"""Benchmarks: ingest, build, report and export side by side with the floor and the peer.

    python bench/run.py                      # two sizes: 20,000 and the full 228,557 traces
    python bench/run.py --traces 5000        # one size
    python bench/run.py --sizes 2000,10000 --steps floor,peer,ingest --no-write

For every size, a synthetic corpus is generated once with `write_sample` and
cached under bench/.cache/ (gitignored); then, in one run on the same files,
every step runs as a subprocess:

    floor            DuckDB reads the `response` column of the Parquet files and sums its length
    peer             bench/peer_tutorial.py: the OpenMementos tutorial's approach (datasets
                     streaming of Python dicts, three `re` patterns, ratios in lists, pandas medians)
    peer+tokens      the same, counting cl100k tokens of every block and memento one at a time
    savvy            bench/peer_savvy.py: the same per-domain medians as one DuckDB statement that
                     splits the responses on the literal markup strings (no regexes)
    parse+flatten    bench/flatten_only.py: ingest's parse and flatten step alone, on every core
    ingest           `cli.py ingest SAMPLE --no-tokens` (the whole pipeline, into a new warehouse)
    ingest+tokens    `cli.py ingest SAMPLE` (with cl100k token counts)
    tokenizer        bench/tokenizer_only.py: the cl100k counts alone, on every core, of the texts that
                     ingest counted (read back from its warehouse: segments and problems); its
                     counting seconds, reads excluded, are the bound an ingest with tokens is judged by
    ingest all       `cli.py ingest SAMPLE --config all` (both configs, with tokens): the warehouse
                     the next steps use, and whose size on disk is compared with the source's
    build            `cli.py build` of all models
    report           `cli.py report`
    export memento   `cli.py export memento`
    sql              `cli.py sql` of every segment's ids, offsets and counts as CSV (millions of rows
                     at full scale), written to /dev/null
    readers          (20,000 traces and fewer) how long `cli.py sql "SELECT count(*) FROM traces"` takes
                     when started 5 s into a re-ingest (--config all --full-refresh) and into a
                     `build --full-refresh` of the same warehouse: readers never wait for a writer
                     (foundation/snapshots.py)
    append           the same number of traces written as --append-shards shards (46, as OpenMementos),
                     ingested (--config all) and built; then one more shard of 1% new traces (a sample
                     of another seed) put in the source folder, ingested and built again: the append's
                     ingest + build seconds against the full ingest + build, measured side by side

For each: wall seconds, CPU seconds of the process tree, traces/s, MB/s of
response text (UTF-8 bytes), and the peak memory of the process tree: psutil polls the
child and all its descendants every 50 ms; the maximum over time of their summed RSS,
and of their RSS with the file-backed pages counted once (each process's anonymous
RSS, plus the largest file-backed RSS among them). The memory targets are judged on
the second: ingest runs one worker per core, each mapping the same duckdb, pyarrow and
numpy libraries, which a summed RSS counts once per process (~110 MiB each with
duckdb and pyarrow imported, on a kernel that maps file pages in large folios:
RssFile, Linux 6.18). PSS would split those pages with whatever else maps them,
this script included, so it is not used. For one process both figures are its RSS.
Ratios: ours against the matching peer, and MB/s against the floor's.
"Ingest start → report written" is the sum of the same run's ingest all, build and report seconds.
With two sizes it prints how peak RSS and time per trace change between them.

bench/RESULTS.md gets the machine, the date and the tables between its
`<!-- bench:begin -->` and `<!-- bench:end -->` markers; text outside the
markers (the profile notes) is kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "RESULTS.md"
PY = sys.executable
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
POLL_S = 0.05
sys.path.insert(0, str(REPO))

STEPS = ("floor", "peer", "peer_tokens", "savvy", "flatten", "ingest", "ingest_tokens", "tokenizer", "ingest_all",
         "build", "report", "export", "sql")
EXTRA_STEPS = ("readers", "append")  # not rows of the table: see reader_waits and append_run
APPEND_SHARDS = 46  # OpenMementos' default config comes as 46 Parquet shards
APPEND_TARGET = 0.05  # append ingest + build, as a share of the full ingest + build
READERS_UP_TO = 20_000  # the re-ingest and rebuild it needs cost ~13 min more at full scale
READER_TARGET_S = 2.0
FULL_SCALE = 228_557  # OpenMementos' traces
START_TO_REPORT_S = 300  # ingest --config all + build + report at full scale, on two cores
LABELS = {
    "floor": "floor: DuckDB sum(length(response))",
    "peer": "peer: tutorial (datasets dicts + re + pandas)",
    "peer_tokens": "peer + cl100k tokens",
    "savvy": "savvy peer: one DuckDB split query",
    "flatten": "ours: parse + flatten alone",
    "ingest": "ours: ingest --no-tokens",
    "ingest_tokens": "ours: ingest (with tokens)",
    "tokenizer": "tokenizer: cl100k counts alone",
    "ingest_all": "ours: ingest --config all (with tokens)",
    "build": "ours: build (all models)",
    "report": "ours: report",
    "export": "ours: export memento",
    "sql": "ours: sql, segments as CSV",
}
MEMORY_LIMIT = 2**30  # every command's peak memory: the process tree's RSS with file pages counted once
SQL_STREAM = "SELECT trace_id, kind, block_idx, char_start, char_end, n_tokens FROM segments"
# Which baseline each of our steps is compared with.
PEER_OF = {"ingest": "peer", "ingest_tokens": "peer_tokens", "flatten": "peer"}


@dataclass
class Result:
    step: str
    seconds: float | None = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None  # bytes, summed over the process tree
    peak_files_once: int | None = None  # bytes: the tree's anonymous RSS plus its largest file-backed RSS
    note: str = ""
    output: str = ""
    ok: bool = True

    @property
    def peak_memory(self) -> int | None:
        """What the memory targets judge: RSS with file pages counted once where measured, else RSS."""
        return self.peak_files_once if self.peak_files_once is not None else self.peak_rss


@dataclass
class SizeRun:
    traces: int
    response_bytes: int
    parquet_bytes: int
    source_bytes_all: int = 0  # Parquet of both configs
    warehouse_bytes: int = 0  # the ingest-all warehouse: DuckDB file + data directory
    results: dict[str, Result] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    reader_waits: dict[str, tuple[float, bool]] = field(default_factory=dict)  # writer -> (reader s, answered)
    append: dict[str, Result] = field(default_factory=dict)  # full_ingest, full_build, append_ingest, append_build
    append_shards: int = 0  # the shards the append step's corpus was written as


# ---------------------------------------------------------------------------
# measuring a subprocess tree


def _tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """The process and its descendants, in bytes: (summed RSS, summed anonymous RSS + the largest
    file-backed RSS). psutil's `shared` is RssFile + RssShmem (/proc/PID/statm)."""
    rss = anonymous = files = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            info = p.memory_info()
        except psutil.Error:
            continue
        rss += info.rss
        anonymous += info.rss - info.shared
        files = max(files, info.shared)
    return rss, anonymous + files


def measure(cmd: list[str], env: dict | None = None, timeout: float | None = None,
            discard_stdout: bool = False) -> tuple[Result, str]:
    """Run cmd, polling the RSS of its process tree; wall and CPU seconds (children reaped by it included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL if discard_stdout else subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = peak_once = 0
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    readers = [threading.Thread(target=lambda s=s, a=a: a.append(s.read()), daemon=True)
               for s, a in ((proc.stdout, out_chunks), (proc.stderr, err_chunks)) if s is not None]
    for r in readers:
        r.start()
    while proc.poll() is None:
        rss, once = _tree_memory(ps)
        peak, peak_once = max(peak, rss), max(peak_once, once)
        if timeout is not None and time.monotonic() - t0 > timeout:
            proc.kill()
        time.sleep(POLL_S)
    wall = time.monotonic() - t0
    for r in readers:
        r.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out, err = "".join(out_chunks), "".join(err_chunks)
    res = Result("", wall, cpu, peak, peak_once, output=out)
    if proc.returncode != 0:
        res.ok = False
        tail = (err.strip().splitlines() or ["(no stderr)"])[-1]
        res.note = f"exit {proc.returncode}: {tail[:200]}"
    return res, err


# ---------------------------------------------------------------------------
# the corpus


def sample_dir(traces: int, seed: int) -> Path:
    from mementos.sample import GENERATOR_VERSION

    return CACHE / f"sample-{traces}-seed{seed}-g{GENERATOR_VERSION}"


def ensure_sample(traces: int, seed: int) -> Path:
    """The cached corpus; write_sample renames a finished sample into place, so one that exists is whole."""
    from mementos.sample import write_sample

    out = sample_dir(traces, seed)
    if not (out / "README.md").exists():
        print(f"generating {traces:,} traces (seed {seed}) into {out} ...", flush=True)
        t0 = time.monotonic()
        write_sample(out, traces, seed=seed, progress=True, overwrite=True)
        print(f"  {time.monotonic() - t0:.0f} s", flush=True)
    return out


def corpus_bytes(sample: Path) -> tuple[int, int]:
    import duckdb

    files = sorted(str(p) for p in (sample / "data").glob("*.parquet"))
    con = duckdb.connect()
    [(text_bytes,)] = con.execute("SELECT sum(strlen(response)) FROM read_parquet(?)", [files]).fetchall()
    con.close()
    return int(text_bytes or 0), sum(os.path.getsize(f) for f in files)


def source_bytes(sample: Path) -> int:
    """Parquet bytes of both configs."""
    return sum(p.stat().st_size for p in sample.rglob("*.parquet"))


def warehouse_bytes(db: Path) -> int:
    """The DuckDB file (and WAL) plus its data directory (the models Spark wrote are not ingest's)."""
    data = Path(str(db) + ".data")
    files = [db, Path(str(db) + ".wal")] + [p for p in data.rglob("*") if p.is_file()]
    # each file once, as `du` counts it: the published catalog is a hard link to its snapshot
    return sum({(s.st_dev, s.st_ino): s.st_size for s in (p.stat() for p in files if p.exists())}.values())


def warm_cache(sample: Path) -> None:
    """Read every file once so that no step pays for the first read from disk."""
    for p in sorted(sample.rglob("*.parquet")):
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


# ---------------------------------------------------------------------------
# the steps


FLOOR_SQL = """
import duckdb, glob, json, sys, time
files = sorted(glob.glob(sys.argv[1] + '/data/*.parquet'))
t0 = time.monotonic()
con = duckdb.connect()
[(n, chars)] = con.execute('SELECT count(*), sum(length(response)) FROM read_parquet(?)', [files]).fetchall()
print(json.dumps({'rows': n, 'chars': int(chars), 'seconds': round(time.monotonic() - t0, 2)}))
"""


WAREHOUSES = {"ingest": "notokens.duckdb", "ingest_tokens": "tokens.duckdb", "ingest_all": "all.duckdb"}
# The steps that read a warehouse an earlier step wrote, and that step.
NEEDS = {"tokenizer": "ingest_tokens", "build": "ingest_all", "report": "ingest_all", "export": "ingest_all",
         "sql": "ingest_all"}


def _warehouse_of(work: Path, step: str) -> Path:
    return work / WAREHOUSES[step]


def _remove_warehouse(stem: Path) -> None:
    shutil.rmtree(Path(str(stem) + ".data"), ignore_errors=True)
    for suffix in ("", ".wal", ".lock"):
        Path(str(stem) + suffix).unlink(missing_ok=True)


def _plan(sample: Path, work: Path, wargs: list[str]) -> list[tuple[str, list[str]]]:
    """Every step's command, in the order they run."""
    quiet = ["--no-progress"]
    db = str(_warehouse_of(work, "ingest_all"))
    tokens_db = str(_warehouse_of(work, "ingest_tokens"))
    return [
        ("floor", [PY, "-c", FLOOR_SQL, str(sample)]),
        ("flatten", [PY, str(BENCH / "flatten_only.py"), str(sample)] + wargs),
        ("peer", [PY, str(BENCH / "peer_tutorial.py"), str(sample)]),
        ("peer_tokens", [PY, str(BENCH / "peer_tutorial.py"), str(sample), "--tokens"]),
        ("savvy", [PY, str(BENCH / "peer_savvy.py"), str(sample)]),
        ("ingest", [PY, "cli.py", "ingest", str(sample), "--db", str(_warehouse_of(work, "ingest")), "--no-tokens"]
         + quiet + wargs),
        ("ingest_tokens", [PY, "cli.py", "ingest", str(sample), "--db", tokens_db] + quiet + wargs),
        ("tokenizer", [PY, str(BENCH / "tokenizer_only.py"), tokens_db] + wargs),
        ("ingest_all", [PY, "cli.py", "ingest", str(sample), "--db", db, "--config", "all"] + quiet + wargs),
        ("build", [PY, "cli.py", "build", "--db", db]),
        ("report", [PY, "cli.py", "report", "--db", db, "--out", str(work / "report.html")]),
        ("export", [PY, "cli.py", "export", "memento", "--db", db, "--out", str(work / "export")]),
        ("sql", [PY, "cli.py", "sql", SQL_STREAM, "--db", db, "--format", "csv"]),
    ]


def run_size(traces: int, seed: int, steps: tuple[str, ...], workers: int | None, keep: bool,
             append_shards: int = APPEND_SHARDS) -> SizeRun:
    sample = ensure_sample(traces, seed)
    text_bytes, parquet_bytes = corpus_bytes(sample)
    run = SizeRun(traces, text_bytes, parquet_bytes)
    work = CACHE / f"work-{traces}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    wargs = [] if workers is None else ["--workers", str(workers)]
    db = _warehouse_of(work, "ingest_all")
    run.source_bytes_all = source_bytes(sample)
    print(f"\n== {traces:,} traces: {text_bytes / 1e6:,.0f} MB of response text, "
          f"{parquet_bytes / 1e6:,.0f} MB of Parquet (default config), "
          f"{run.source_bytes_all / 1e6:,.0f} MB (both configs) ==", flush=True)
    warm_cache(sample)
    run.load_before = os.getloadavg()

    for step, cmd in _plan(sample, work, wargs):
        if step not in steps:
            continue
        needed = NEEDS.get(step)
        if needed is not None and not _warehouse_of(work, needed).exists():
            run.results[step] = Result(step, note=f"skipped: no {LABELS[needed].removeprefix('ours: ')} "
                                                  f"warehouse in this run", ok=False)
            continue
        res, err = measure(cmd, env, discard_stdout=step == "sql")
        res.step = step
        run.results[step] = res
        if not res.ok:
            sys.stderr.write(err[-3000:])
        print(f"  {LABELS[step]:46s} {_line(run, res)}", flush=True)
        if step == "ingest_all" and res.ok:
            run.warehouse_bytes = warehouse_bytes(db)
            print(f"  {'warehouse on disk':46s} {run.warehouse_bytes / 1e6:,.0f} MB, "
                  f"{run.warehouse_bytes / run.source_bytes_all:.2f}× the source's Parquet", flush=True)
        # the default-config warehouses, once nothing later reads them (the tokenizer reads ingest+tokens')
        last_reader = step in ("ingest", "tokenizer") or step == "ingest_tokens" and "tokenizer" not in steps
        if last_reader and not keep:
            _remove_warehouse(_warehouse_of(work, NEEDS.get(step, step)))
    total = _start_to_report(run)
    if total is not None:
        print(f"  {'ingest start → report written':46s} {total[1]}", flush=True)
    if "readers" in steps and db.exists() and traces <= READERS_UP_TO:
        run.reader_waits = reader_waits(db, sample, env)
        for what, (seconds, ok) in run.reader_waits.items():
            print(f"  {'sql reader during ' + what:46s} {seconds:8.2f} s{'' if ok else '  [failed]'}", flush=True)
    if "append" in steps:
        run.append = append_run(traces, seed, work, env, wargs, append_shards)
        run.append_shards = len(list((work / "append-source" / "data").glob("*.parquet"))) - 1
    _check_outputs(run)
    run.load_after = os.getloadavg()
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return run


def reader_waits(db: Path, sample: Path, env: dict, delay: float = 5.0) -> dict[str, tuple[float, bool]]:
    """Wall seconds of a `sql` reader started `delay` s into a re-ingest and into a full rebuild of `db`,
    and whether it answered while the writer was still running."""
    out = {}
    writers = {"ingest": [PY, "cli.py", "ingest", str(sample), "--db", str(db), "--config", "all", "--no-progress",
                          "--full-refresh"],  # re-reads every shard: unchanged ones alone would be no work
               "build": [PY, "cli.py", "build", "--db", str(db), "--full-refresh"]}
    for what, cmd in writers.items():
        writer = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(delay)
        t0 = time.monotonic()
        reader = subprocess.run([PY, "cli.py", "sql", "SELECT count(*) FROM traces", "--db", str(db)], cwd=REPO,
                                env={**os.environ, **env}, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        during = writer.poll() is None
        writer.wait()
        out[what] = (seconds, reader.returncode == 0 and during and writer.returncode == 0)
    return out


def append_corpus(traces: int, seed: int, shards: int, work: Path) -> tuple[Path, Path]:
    """A source folder in `work` holding the corpus as `shards` shards (hard links to a cached sample),
    and the folder of the one shard appended later: 1% new traces, of another seed."""
    from mementos.sample import GENERATOR_VERSION, write_sample

    cached = {}
    for n, s, rows in ((traces, seed, -(-traces // shards)), (max(1, traces // 100), seed + 1, None)):
        out = CACHE / f"sample-{n}-seed{s}-shards{rows or 'one'}-g{GENERATOR_VERSION}"
        if not (out / "README.md").exists():
            write_sample(out, n, seed=s, shard_rows=rows or n, overwrite=True)
        cached[s] = out
    source = work / "append-source"
    shutil.copytree(cached[seed], source, copy_function=os.link)
    return source, cached[seed + 1]


def append_run(traces: int, seed: int, work: Path, env: dict, wargs: list[str], shards: int) -> dict[str, Result]:
    """Full ingest + build of the sharded corpus, then ingest + build after one more shard was added."""
    source, extra = append_corpus(traces, seed, shards, work)
    db = work / "append.duckdb"
    ingest = [PY, "cli.py", "ingest", str(source), "--db", str(db), "--config", "all", "--no-progress"] + wargs
    build = [PY, "cli.py", "build", "--db", str(db)]
    out: dict[str, Result] = {}
    for step, cmd in (("full_ingest", ingest), ("full_build", build), ("add", None),
                      ("append_ingest", ingest), ("append_build", build)):
        if cmd is None:  # the new shard arrives
            for config_dir in ("data", "full"):
                [shard] = (extra / config_dir).glob("*.parquet")
                os.link(shard, source / config_dir / "train-append.parquet")
            continue
        res, err = measure(cmd, env)
        res.step = step
        out[step] = res
        if not res.ok:
            sys.stderr.write(err[-3000:])
    print(f"  {f'append {max(1, traces // 100):,} traces as one more shard':46s} {_append_line(out)}", flush=True)
    return out


def _append_seconds(append: dict[str, Result]) -> tuple[float, float] | None:
    """(append ingest + build, full ingest + build) seconds, when all four ran."""
    if len(append) < 4 or not all(r.ok and r.seconds is not None for r in append.values()):
        return None
    return (append["append_ingest"].seconds + append["append_build"].seconds,
            append["full_ingest"].seconds + append["full_build"].seconds)


def _append_line(append: dict[str, Result]) -> str:
    both = _append_seconds(append)
    if both is None:
        return "failed"
    return (f"ingest {append['append_ingest'].seconds:.1f} s + build {append['append_build'].seconds:.1f} s = "
            f"{both[0]:.1f} s, against full ingest {append['full_ingest'].seconds:.1f} s + build "
            f"{append['full_build'].seconds:.1f} s = {both[1]:.1f} s: {both[0] / both[1]:.1%}; peak memory "
            f"{_mib(append['append_ingest'].peak_memory)} / {_mib(append['append_build'].peak_memory)} MiB against "
            f"{_mib(append['full_ingest'].peak_memory)} / {_mib(append['full_build'].peak_memory)}")



def _append_share(run: SizeRun) -> str:
    both = _append_seconds(run.append)
    if both is None:
        return "n/a" if not run.append else "**failed**"
    return _verdict(both[0] <= APPEND_TARGET * both[1], f"{both[0] / both[1]:.1%} ({both[0]:.1f} of {both[1]:.1f} s)")


def _summary(res: Result) -> dict | None:
    """The JSON line a bench script prints last on stdout, if it printed one."""
    try:
        return json.loads(res.output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _check_outputs(run: SizeRun) -> None:
    """Every step must have seen every trace: a fast step that skipped work is no result.
    The tokenizer must have counted the tokens ingest stored: else it counted other texts."""
    for step in ("floor", "peer", "peer_tokens", "savvy", "flatten", "tokenizer"):
        res = run.results.get(step)
        if res is None or not res.ok:
            continue
        data = _summary(res)
        if data is None:
            res.note = "no JSON summary on stdout"
            continue
        rows = data.get("rows", data.get("traces"))
        if rows != run.traces:
            res.note = f"saw {rows} rows, expected {run.traces}"
            res.ok = False
        elif step == "tokenizer" and data.get("tokens") != data.get("stored_tokens"):
            res.note = f"counted {data.get('tokens')} tokens where ingest stored {data.get('stored_tokens')}"
            res.ok = False


# ---------------------------------------------------------------------------
# formatting


def _mbps(run: SizeRun, res: Result) -> float:
    return run.response_bytes / 1e6 / res.seconds


def _line(run: SizeRun, res: Result) -> str:
    if res.seconds is None:
        return res.note
    return (f"{res.seconds:8.1f} s  {res.cpu_seconds:8.1f} cpu-s  {run.traces / res.seconds:8.0f} traces/s  "
            f"{_mbps(run, res):7.1f} MB/s  {res.peak_rss / 2**20:7.0f} MiB peak RSS, {_mib(res.peak_files_once):>5} files once" + (f"  [{res.note}]" if res.note else ""))


def table(run: SizeRun) -> str:
    floor = run.results.get("floor")
    rows = ["| step | wall s | CPU s | traces/s | MB/s | peak RSS MiB | files once MiB | × peer | % of floor MB/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for step in STEPS:
        res = run.results.get(step)
        if res is None:
            continue
        if res.seconds is None or not res.ok and res.seconds is None:
            rows.append(f"| {LABELS[step]} | {res.note} | | | | | | | |")
            continue
        peer = run.results.get(PEER_OF.get(step, ""))
        vs_peer = f"{peer.seconds / res.seconds:.2f}× {PEER_OF[step].replace('_', '+')}" if peer and peer.seconds else ""
        vs_floor = f"{100 * floor.seconds / res.seconds:.0f}%" if floor and floor.seconds and step != "floor" else ""
        flag = "" if res.ok else f" ({res.note})"
        rows.append(f"| {LABELS[step]}{flag} | {res.seconds:.1f} | {res.cpu_seconds:.1f} | {run.traces / res.seconds:,.0f} | "
                    f"{_mbps(run, res):.1f} | {res.peak_rss / 2**20:,.0f} | {_mib(res.peak_files_once)} | {vs_peer} | {vs_floor} |")
    return "\n".join(rows)


def _mib(n: int | None) -> str:
    return "" if n is None else f"{n / 2**20:,.0f}"


def _memory(res: Result) -> str:
    """A target cell's figure: RSS with file pages counted once, the summed RSS beside it when they differ."""
    if res.peak_files_once is None or res.peak_files_once == res.peak_rss:
        return f"{res.peak_memory / 2**20:,.0f} MiB"
    return f"{res.peak_files_once / 2**20:,.0f} MiB ({res.peak_rss / 2**20:,.0f} summed RSS)"


def scaling(small: SizeRun, large: SizeRun) -> str:
    rows = [f"| step | peak MiB (files once) at {small.traces:,} | at {large.traces:,} | change | "
            f"ms/trace at {small.traces:,} | at {large.traces:,} | change |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for step in STEPS:
        a, b = small.results.get(step), large.results.get(step)
        if not a or not b or a.seconds is None or b.seconds is None:
            continue
        ta, tb = 1000 * a.seconds / small.traces, 1000 * b.seconds / large.traces
        rows.append(f"| {LABELS[step]} | {a.peak_memory / 2**20:,.0f} | {b.peak_memory / 2**20:,.0f} | "
                    f"{100 * (b.peak_memory / a.peak_memory - 1):+.0f}% | {ta:.2f} | {tb:.2f} | {100 * (tb / ta - 1):+.0f}% |")
    return "\n".join(rows)


MEMORY_STEPS = ("ingest", "ingest_tokens", "ingest_all", "build", "report", "export", "sql")


def _verdict(ok: bool | None, text: str) -> str:
    return "n/a" if ok is None else f"{'met' if ok else '**missed**'}: {text}"


def _measured(run: SizeRun, step: str) -> Result | None:
    res = run.results.get(step)
    return res if res is not None and res.ok and res.seconds else None


def _row(name: str, runs: list[SizeRun], cell_of) -> str:
    return f"| {name} | " + " | ".join(cell_of(run) for run in runs) + " |"


def _speedup(ours: str, base: str, want: float, base_name: str):
    def cell_of(run: SizeRun) -> str:
        o, b = _measured(run, ours), _measured(run, base)
        if not (o and b):
            return _verdict(None, "")
        return _verdict(b.seconds / o.seconds >= want, f"{b.seconds / o.seconds:.2f}× {base_name}")
    return cell_of


def _floor_share(run: SizeRun) -> str:
    o, f = _measured(run, "flatten"), _measured(run, "floor")
    if not (o and f):
        return _verdict(None, "")
    return _verdict(f.seconds / o.seconds >= 0.40, f"{100 * f.seconds / o.seconds:.0f}% of floor MB/s")


def _size(run: SizeRun) -> str:
    ok = (None if not run.warehouse_bytes or not run.source_bytes_all
          else run.warehouse_bytes <= 1.5 * run.source_bytes_all)
    return _verdict(ok, f"{run.warehouse_bytes / max(run.source_bytes_all, 1):.2f}× "
                        f"({run.warehouse_bytes / 1e6:,.0f} of {run.source_bytes_all / 1e6:,.0f} MB)")


def _peak_memory(step: str):
    def cell_of(run: SizeRun) -> str:
        r = _measured(run, step)
        return _verdict(None, "") if r is None else _verdict(r.peak_memory <= MEMORY_LIMIT, _memory(r))
    return cell_of


def _memory_growth_row(runs: list[SizeRun]) -> str:
    small, large = runs[0], runs[-1]
    parts = [(s, b.peak_memory / a.peak_memory - 1) for s in MEMORY_STEPS
             if (a := _measured(small, s)) and (b := _measured(large, s))]
    ok = None if not parts else all(abs(x) <= 0.10 for _, x in parts)
    text = ", ".join(f"{s.replace('_', ' ')} {100 * x:+.0f}%" for s, x in parts)
    return (f"| peak memory within ±10% from {small.traces:,} to {large.traces:,} | "
            + " | ".join([_verdict(ok, text)] + [""] * (len(runs) - 1)) + " |")


def _start_to_report(run: SizeRun) -> tuple[float, str] | None:
    """Ingest start to report written: the seconds of the same run's ingest all, build and report, summed."""
    parts = [(step, _measured(run, step)) for step in ("ingest_all", "build", "report")]
    if not all(r for _, r in parts):
        return None
    total = sum(r.seconds for _, r in parts)
    return total, " + ".join(f"{step.replace('_', ' ')} {r.seconds:.1f} s" for step, r in parts) + f" = {total:.1f} s"


def _start_to_report_cell(run: SizeRun) -> str:
    both = _start_to_report(run)
    if both is None:
        return "n/a"
    if run.traces < FULL_SCALE:
        return f"({both[1]}; target at {FULL_SCALE:,})"
    return _verdict(both[0] <= START_TO_REPORT_S, both[1])


def _no_tokens_target(run: SizeRun) -> str:
    """ingest --no-tokens: at least 8× the tutorial peer's throughput, and at most 1.5× the savvy query's time."""
    ours, peer, savvy = _measured(run, "ingest"), _measured(run, "peer"), _measured(run, "savvy")
    if not (ours and peer and savvy):
        return _verdict(None, "")
    speedup, of_savvy = peer.seconds / ours.seconds, ours.seconds / savvy.seconds
    return _verdict(speedup >= 8 and of_savvy <= 1.5, f"{speedup:.2f}× peer, {of_savvy:.2f}× savvy's time")


def _tokenizer_target(run: SizeRun) -> str:
    """ingest with tokens: at most 1.25× the tokenizer's counting seconds over the same texts."""
    ours, tok = _measured(run, "ingest_tokens"), _measured(run, "tokenizer")
    counting = (_summary(tok) or {}).get("count_seconds") if tok else None
    if not (ours and counting):
        return _verdict(None, "")
    return _verdict(ours.seconds <= 1.25 * counting,
                    f"{ours.seconds / counting:.2f}× ({ours.seconds:.1f} s against counting's {counting:.1f} s)")


def _ingest_share(step: str):
    """A target cell: `step`'s time as a share of ingest --config all's, met at a quarter or less."""
    def cell_of(run: SizeRun) -> str:
        s, i = _measured(run, step), _measured(run, "ingest_all")
        if not (s and i):
            return _verdict(None, "")
        return _verdict(s.seconds <= i.seconds / 4, f"{100 * s.seconds / i.seconds:.0f}% of ingest time")
    return cell_of


def _report_time(run: SizeRun) -> str:
    r = _measured(run, "report")
    if r is None:
        return f"n/a: {(run.results.get('report') or Result('report', note='not run')).note}"
    if run.traces < 100_000:
        return f"({r.seconds:.1f} s; the target is at 100,000 and more)"
    return _verdict(r.seconds < 10, f"{r.seconds:.1f} s")


def _reader_wait(what: str):
    def cell_of(run: SizeRun) -> str:
        wait = run.reader_waits.get(what)
        if wait is None:
            return "n/a"
        return _verdict(wait[1] and wait[0] < READER_TARGET_S, f"{wait[0]:.2f} s" + ("" if wait[1] else " (failed)"))
    return cell_of


def targets(runs: list[SizeRun]) -> str:
    """The scale issue's targets, each checked at every size."""
    lines = ["| target | " + " | ".join(f"{r.traces:,} traces" for r in runs) + " |",
             "|---|" + "---|" * len(runs),
             _row("ingest --no-tokens ≥ 8× peer throughput and ≤ 1.5× the savvy query's time", runs,
                  _no_tokens_target),
             _row("ingest with tokens ≥ 2.5× peer+tokens", runs,
                  _speedup("ingest_tokens", "peer_tokens", 2.5, "peer+tokens")),
             _row("ingest with tokens ≤ 1.25× the tokenizer's own time, same texts, all cores", runs,
                  _tokenizer_target),
             _row("parse + flatten ≥ 40% of the floor's MB/s", runs, _floor_share),
             _row("warehouse (file + data directory) ≤ 1.5× the source Parquet, both configs", runs, _size)]
    lines += [_row(f"{LABELS[step].removeprefix('ours: ')}: peak memory ≤ 1 GiB", runs, _peak_memory(step))
              for step in MEMORY_STEPS]
    if len(runs) >= 2:
        lines.append(_memory_growth_row(runs))
    lines += [_row(f"ingest start → report written (ingest all + build + report) ≤ 5 min at {FULL_SCALE:,} traces",
                   runs, _start_to_report_cell),
              _row("build ≤ 1/4 of ingest-all time", runs, _ingest_share("build")),
              _row("export memento ≤ 1/4 of ingest-all time", runs, _ingest_share("export")),
              _row("report < 10 s at 100,000 traces and more", runs, _report_time)]
    lines += [_row(f"a `sql` reader started during {'a re-ingest' if what == 'ingest' else 'a full rebuild'} "
                   f"answers < {READER_TARGET_S:.0f} s", runs, _reader_wait(what)) for what in ("ingest", "build")]
    lines.append(_row(f"append 1% as one more shard: ingest + build ≤ {APPEND_TARGET:.0%} of full ingest + build",
                      runs, _append_share))
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    import duckdb
    import pyarrow

    return (f"{os.cpu_count()} cores ({cpu or 'unknown CPU'}), {mem:.0f} GB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
            f"pyarrow {pyarrow.__version__}")


def _derived_lines(run: SizeRun) -> list[str]:
    """The figures under a size's table that sum or unpack its steps' results."""
    out = []
    tok = _measured(run, "tokenizer")
    data = _summary(tok) if tok else None
    if data:
        out += [f"Tokenizer alone: {data['tokens']:,} tokens of {data['texts']:,} texts (those ingest counted), "
                f"{data['count_seconds']:.1f} s counting on the slowest worker, {tok.seconds:.1f} s with the reads.", ""]
    total = _start_to_report(run)
    if total is not None:
        out += [f"Ingest start → report written (this run's ingest all + build + report): {total[1]}.", ""]
    return out


def render(runs: list[SizeRun], started: dt.datetime, seconds: float) -> str:
    out = [BEGIN, "",
           f"Run: {started:%Y-%m-%d %H:%M} local, {seconds / 60:.0f} min in all; `python bench/run.py "
           f"{' '.join(sys.argv[1:])}`".rstrip() + ".",
           f"Machine: {machine()}.", ""]
    for run in runs:
        out += [f"### {run.traces:,} traces: {run.response_bytes / 1e6:,.0f} MB of response text "
                f"({run.parquet_bytes / 1e6:,.0f} MB of zstd Parquet)", "",
                f"Load average (1/5/15 min) before: {' / '.join(f'{x:.1f}' for x in run.load_before)}, "
                f"after: {' / '.join(f'{x:.1f}' for x in run.load_after)}.", "",
                table(run), ""]
        out += _derived_lines(run)
        if run.append:
            out += [f"Append (the corpus as {run.append_shards} shards, then one more): {_append_line(run.append)}.", ""]
        if run.warehouse_bytes:
            out += [f"Warehouse after `ingest --config all`: {run.warehouse_bytes / 1e6:,.0f} MB (DuckDB file + data "
                    f"directory), {run.warehouse_bytes / run.source_bytes_all:.2f}× the source's "
                    f"{run.source_bytes_all / 1e6:,.0f} MB of Parquet (both configs).", ""]
    if len(runs) >= 2:
        out += [f"### From {runs[0].traces:,} to {runs[-1].traces:,} traces", "", scaling(runs[0], runs[-1]), ""]
    out += ["### Targets", "", targets(runs), "", END]
    return "\n".join(out)


def write_results(text: str, path: Path = RESULTS) -> None:
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + text + tail
    else:
        new = "# Benchmarks\n\nGenerated by `make bench` (`python bench/run.py`); the notes below the tables are kept.\n\n" \
              + text + "\n" + old
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, help="one size of N traces (default: two sizes, see --sizes)")
    ap.add_argument("--sizes", default=f"20000,{FULL_SCALE}", help=f"comma-separated sizes [20000,{FULL_SCALE}]")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--steps", default=",".join(STEPS + EXTRA_STEPS),
                    help=f"comma-separated subset of {','.join(STEPS + EXTRA_STEPS)}")
    ap.add_argument("--workers", type=int, help="ingest worker processes [ingest's default: one per core]")
    ap.add_argument("--append-shards", type=int, default=APPEND_SHARDS,
                    help=f"shards the append step writes the corpus as [{APPEND_SHARDS}]")
    ap.add_argument("--keep", action="store_true", help="keep the warehouses under bench/.cache/work-N/")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where to write the results [bench/RESULTS.md]")
    args = ap.parse_args(argv)

    sizes = [args.traces] if args.traces else [int(s) for s in args.sizes.split(",") if s.strip()]
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    unknown = set(steps) - set(STEPS + EXTRA_STEPS)
    if unknown:
        ap.error(f"unknown steps {', '.join(sorted(unknown))}; choose from {', '.join(STEPS + EXTRA_STEPS)}")
    started, t0 = dt.datetime.now(), time.monotonic()
    runs = [run_size(n, args.seed, steps, args.workers, args.keep, args.append_shards) for n in sizes]
    text = render(runs, started, time.monotonic() - t0)
    print("\n" + text.replace(BEGIN, "").replace(END, "").strip())
    if not args.no_write:
        write_results(text, args.results)
        print(f"\nwrote {args.results}")
    return 0 if all(r.ok or r.note.startswith("skipped") for run in runs for r in run.results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
