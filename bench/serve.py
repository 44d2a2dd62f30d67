"""`mementos serve` against a warehouse: page times (p50, p95), text search time, server RSS.

    python bench/serve.py --db /tmp/w.duckdb [--samples 100] [--clients 8] [--seconds 20]

Starts `mementos serve --port 0` on the warehouse, warms it (the trace index and the overview are
read once per snapshot), then measures, one request at a time:
  * a trace page (HTML) for --samples random traces,
  * a filtered trace list (HTML) for --samples random filters (facet values, ratio and block ranges, sorts),
  * text searches (`q`) for a few words, each searched once (a repeated search is remembered),
and then --clients threads requesting random trace pages and lists for --seconds, while the server's
RSS is sampled. Prints one table, and the figures as JSON with --json. Nothing is asserted:
the targets (issue 31) are 200 ms p95 for a trace page and a filtered list, 2 s for a search and
1 GiB of RSS with 8 clients; bench/RESULTS.md records measured figures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode

import psutil

REPO = Path(__file__).resolve().parent.parent
SEARCH_WORDS = ("triangle", "modulo", "recursion", "contradiction", "xylophone", "right triangle", "x = 3")


def start(db: str) -> tuple[subprocess.Popen, str]:
    """The server on a free port, and its URL (read from the line it prints)."""
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "serve", "--db", db, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    found = re.search(r"http://[^/ ]+/", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the server did not start: {line}{proc.stdout.read()}")
    return proc, found.group(0).rstrip("/")


def get(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        body = response.read()
    return time.perf_counter() - t0, body


def get_json(url: str):
    return json.loads(get(url)[1])


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def random_filters(facets: dict, rng: random.Random) -> dict:
    """One to three filters from the facets' values, ranges and a sort."""
    choices = [name for name, values in facets.items() if values]
    out = {}
    for name in rng.sample(choices, k=min(len(choices), rng.randint(1, 3))):
        out[name] = rng.choice(facets[name])["value"]
    if rng.random() < 0.3:
        out["min_ratio"] = round(rng.uniform(0.05, 0.3), 2)
    if rng.random() < 0.3:
        out["min_blocks"] = rng.randint(2, 20)
    out["sort"] = rng.choice(["row", "-ratio", "n_blocks", "-block_tokens", "domain"])
    return out


def serial(base: str, trace_ids: list[str], facets: dict, samples: int, rng: random.Random) -> dict:
    trace_times = [get(f"{base}/traces/{quote(t, safe='')}")[0] for t in rng.sample(trace_ids, samples)]
    list_times = [get(f"{base}/traces?{urlencode(random_filters(facets, rng))}")[0] for _ in range(samples)]
    searches = {word: get(f"{base}/traces.json?{urlencode({'q': word, 'page_size': 50})}")[0]
                for word in SEARCH_WORDS}
    return {"trace_p50_ms": 1000 * statistics.median(trace_times), "trace_p95_ms": 1000 * p95(trace_times),
            "list_p50_ms": 1000 * statistics.median(list_times), "list_p95_ms": 1000 * p95(list_times),
            "search_s": searches, "search_max_s": max(searches.values())}


def concurrent(base: str, proc: subprocess.Popen, trace_ids: list[str], facets: dict, clients: int,
               seconds: float) -> dict:
    """Peak and final RSS of the server while `clients` threads request pages for `seconds`."""
    server = psutil.Process(proc.pid)
    stop = time.monotonic() + seconds
    times: list[float] = []
    errors: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            url = (f"{base}/traces/{quote(rng.choice(trace_ids), safe='')}" if rng.random() < 0.5
                   else f"{base}/traces?{urlencode(random_filters(facets, rng))}")
            try:
                times.append(get(url)[0])
            except OSError as exc:
                errors.append(f"{url}: {exc}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, server.memory_info().rss)
        time.sleep(0.05)
    return {"clients": clients, "requests": len(times), "errors": errors[:3],
            "concurrent_p95_ms": 1000 * p95(times) if times else None, "rss_peak_mib": peak / 2**20,
            "rss_after_mib": server.memory_info().rss / 2**20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="The warehouse to serve (built: the overview reads the models).")
    ap.add_argument("--samples", type=int, default=100, help="Random traces, and random filters, timed one by one.")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0, help="How long the concurrent clients run.")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    proc, base = start(args.db)
    try:
        first_list, _ = get(f"{base}/traces")  # reads the trace index
        first_overview, _ = get(f"{base}/")  # reads the report's figures
        trace_ids = [row[0] for row in get_json(f"{base}/sql.json?" + urlencode(
            {"sql": f"SELECT trace_id FROM traces USING SAMPLE {max(args.samples, 200)} ROWS"}))["rows"]]
        facets = get_json(f"{base}/traces.json?page_size=1")["facets"]
        out = {"db": args.db, "traces": get_json(f"{base}/traces.json?page_size=1")["total"],
               "first_list_s": first_list, "first_overview_s": first_overview}
        out |= serial(base, trace_ids, facets, args.samples, rng)
        out |= concurrent(base, proc, trace_ids, facets, args.clients, args.seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"mementos serve on {out['db']} ({out['traces']:,} traces)")
    print(f"  first list (reads the trace index)   {out['first_list_s']:8.2f} s")
    print(f"  first overview (the report's figures) {out['first_overview_s']:8.2f} s")
    print(f"  trace page          p50 {out['trace_p50_ms']:7.1f} ms   p95 {out['trace_p95_ms']:7.1f} ms")
    print(f"  filtered list       p50 {out['list_p50_ms']:7.1f} ms   p95 {out['list_p95_ms']:7.1f} ms")
    print(f"  text search         max {out['search_max_s']:7.2f} s    "
          + ", ".join(f"{w} {s:.2f} s" for w, s in out["search_s"].items()))
    print(f"  {out['clients']} clients, {args.seconds:g} s: {out['requests']:,} requests, p95 "
          f"{out['concurrent_p95_ms']:.1f} ms, RSS peak {out['rss_peak_mib']:.0f} MiB"
          + (f", errors: {out['errors']}" if out["errors"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
