"""Before/after side by side: every command of another revision and of this tree, on one sample, in one run.

    python bench/compare.py 8ce1b17                    # 20,000 traces, two rounds each
    python bench/compare.py main~5 --traces 5000 --rounds 3

The other revision is checked out (git worktree) under bench/.cache/rev-<sha>/ and installed in a
venv of its own there (once, from pyproject.toml): this venv's editable install maps `mementos.*`
onto this tree's folders, so the other tree's cli.py run with it would import this tree's library.
Both trees run the same steps (bench/run.py's `measure`) on the same cached sample, the rounds
interleaved so that a drift of the machine touches both. Prints a Markdown table: the faster time
and the larger peak memory of the rounds, and the change.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import run as bench

STEPS = ("ingest --no-tokens", "ingest --config all", "build", "report", "export memento", "sql segments csv")


def checkout(rev: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=bench.REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    tree = bench.CACHE / f"rev-{sha}"
    if not (tree / "cli.py").exists():
        subprocess.run(["git", "worktree", "add", "--force", "--detach", str(tree), sha], cwd=bench.REPO, check=True,
                       capture_output=True)
    return tree


def installed_python(tree: Path) -> Path:
    """The python of `tree`'s own venv (tree/.venv), with `tree` installed in it, editable: made the first time."""
    venv = tree / ".venv"
    python, stamp = venv / "bin" / "python", venv / ".installed"
    if not stamp.exists():
        print(f"installing {tree.name} in {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(tree)], check=True)
        stamp.touch()
    return python


def commands(sample: Path, work: Path) -> list[tuple[str, list[str]]]:
    db = work / "all.duckdb"
    return list(zip(STEPS, [
        ["ingest", str(sample), "--db", str(work / "nt.duckdb"), "--no-tokens", "--no-progress"],
        ["ingest", str(sample), "--db", str(db), "--config", "all", "--no-progress"],
        ["build", "--db", str(db)],
        ["report", "--db", str(db), "--out", str(work / "r.html")],
        ["export", "memento", "--db", str(db), "--out", str(work / "x")],
        ["sql", bench.SQL_STREAM, "--db", str(db), "--format", "csv"],
    ]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the revision to compare this tree with (a commit, tag or branch)")
    ap.add_argument("--traces", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    sample = bench.ensure_sample(args.traces, args.seed)
    other = checkout(args.rev)
    trees = {f"before ({args.rev})": (other, installed_python(other)), "after (this tree)": (bench.REPO, bench.PY)}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        for label, (tree, python) in trees.items():
            work = bench.CACHE / f"compare-{round_}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            for name, cmd in commands(sample, work):
                res, err = bench.measure([str(python), str(tree / "cli.py"), *cmd],
                                         {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
                                         discard_stdout=name.startswith("sql"))
                if not res.ok:
                    sys.stderr.write(err[-2000:])
                    return 1
                results.setdefault((name, label), []).append((res.seconds, res.peak_memory / 2**20))
                print(f"{label:24s} {name:22s} {res.seconds:7.1f} s {res.peak_memory / 2**20:7.0f} MiB", flush=True)
            shutil.rmtree(work)
    before, after = trees
    print(f"\n| command ({args.traces:,} traces) | before s | after s | change | before MiB | after MiB | change |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in STEPS:
        b, a = results[(name, before)], results[(name, after)]
        bs, as_ = min(x[0] for x in b), min(x[0] for x in a)
        bm, am = max(x[1] for x in b), max(x[1] for x in a)
        print(f"| {name} | {bs:.1f} | {as_:.1f} | {100 * (as_ / bs - 1):+.0f}% | {bm:,.0f} | {am:,.0f} | "
              f"{100 * (am / bm - 1):+.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
