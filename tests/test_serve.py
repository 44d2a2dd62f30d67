"""`mementos serve`: the pages and their JSON twins, the filters, escaping, the SQL console's refusals and
limits, and a write published while it runs. Each server is the real command (`cli.py serve --port 0`) in
a subprocess with a temp folder of its own, asked over HTTP from 127.0.0.1; no timing is asserted."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

import mementos
from mementos.warehouse.explorer import search
from mementos.warehouse.explorer.search import spellings
from conftest import write_hub_dir
from report_fixtures import DATASET, PAYLOADS, ingest_hostile

REPO = Path(__file__).resolve().parent.parent
SAMPLE_TRACES = 120


class Server:
    """`mementos serve` on a free port of 127.0.0.1; `get` returns (status, body)."""

    def __init__(self, db: Path, tmp: Path, *options: str):
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(tmp)}
        self.proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "serve", "--db", str(db), "--port", "0",
                                      *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.first_line = self.proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", self.first_line)
        assert found, self.first_line + self.proc.stdout.read()
        self.url = found.group(0).rstrip("/")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=120) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8")

    def json(self, path: str, status: int = 200):
        code, body = self.get(path)
        assert code == status, (path, code, body[:500])
        return json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> tuple[Path, list[str]]:
    """A built warehouse of a small sample (config all) and the report's hostile dataset; (db, hostile ids)."""
    from mementos.ingest.pipeline import run_ingest
    from mementos.sample import write_sample
    from mementos.warehouse.engine import build

    tmp = tmp_path_factory.mktemp("serve")
    db = tmp / "wh" / "w.duckdb"
    write_sample(tmp / "sample", SAMPLE_TRACES, seed=3)
    run_ingest(str(tmp / "sample"), db, config="all", name="sample", with_tokens=True, workers=0, progress=False)
    ids = ingest_hostile(tmp / "hostile_src", db)
    assert build(db).ok and not search.indexed(db)  # the search index is built on request
    assert build(db, select=["trace_words+"]).ok and search.indexed(db)
    return db, ids


@pytest.fixture(scope="module")
def server(warehouse, tmp_path_factory):
    s = Server(warehouse[0], tmp_path_factory.mktemp("serve-tmp"))
    yield s
    s.stop()


def count(db: Path, sql: str, params=()) -> int:
    with mementos.connect(db) as con:
        return con.execute(sql, list(params)).fetchall()[0][0]


def test_it_says_where_it_listens_and_binds_127_0_0_1(server):
    assert server.first_line.startswith("mementos serve: http://127.0.0.1:")
    assert "read-only; Ctrl-C stops it" in server.first_line


def test_the_overview_shows_the_reports_figures(server, warehouse):
    db, _ = warehouse
    figures = server.json("/.json")["figures"]
    assert figures["totals"]["traces"] == SAMPLE_TRACES + 4
    assert figures["totals"]["blocks"] == count(db, "SELECT count(*) FROM block_pairs")
    status, page = server.get("/")
    assert status == 200 and f"<b>{SAMPLE_TRACES + 4:,}</b>traces" in page


def test_the_trace_list_counts_and_facets(server, warehouse):
    db, _ = warehouse
    listed = server.json("/traces.json?page_size=1000")
    assert listed["total"] == SAMPLE_TRACES + 4 == len(listed["rows"])
    assert {"trace_id", "domain", "status", "ratio", "n_blocks"} <= set(listed["rows"][0])
    math = server.json("/traces.json?domain=math")
    assert math["total"] == count(db, "SELECT count(*) FROM traces WHERE domain = 'math'")
    domains = {f["value"]: f["traces"] for f in math["facets"]["domain"]}  # its own filter left out: every domain
    assert domains["math"] == math["total"] and len(domains) > 1
    flagged = server.json("/traces.json?status=flagged")
    assert flagged["total"] == count(db, "SELECT count(*) FROM traces WHERE status = 'flagged'") > 0


def test_filters_by_issue_reason_ranges_and_text(server, warehouse):
    db, _ = warehouse
    code = server.json("/traces.json?status=flagged")["facets"]["issue"][0]["value"]
    assert server.json(f"/traces.json?issue={code}")["total"] == count(
        db, "SELECT count(DISTINCT trace_id) FROM parse_issues WHERE config = 'default' AND code = ?", [code])
    assert server.json("/traces.json?reason=flagged")["total"] == count(
        db, "SELECT count(*) FROM outlier_traces WHERE reasons LIKE '%flagged%'")
    assert server.json("/traces.json?min_blocks=5&max_blocks=6")["total"] == count(
        db, "SELECT count(*) FROM traces WHERE n_blocks BETWEEN 5 AND 6")
    ratios = [r["ratio"] for r in server.json("/traces.json?min_ratio=0.1&max_ratio=0.2&page_size=1000")["rows"]]
    assert ratios and all(0.1 <= r <= 0.2 for r in ratios)
    found = server.json("/traces.json?" + urlencode({"q": "WINDOW.__PWNED = 1"}))  # its lower case is in the texts
    assert found["total"] == count(db, "SELECT count(*) FROM traces WHERE contains(problem, 'window.__pwned = 1') "
                                       "OR contains(response, 'window.__pwned = 1')") > 0
    assert spellings("modulo N") == ["modulo N", "modulo n", "Modulo n", "Modulo N", "MODULO N"]


def test_sorting_and_paging(server):
    by_blocks = server.json("/traces.json?sort=-n_blocks&page_size=10")["rows"]
    assert [r["n_blocks"] for r in by_blocks] == sorted((r["n_blocks"] for r in by_blocks), reverse=True)
    first, second = (server.json(f"/traces.json?page_size=7&page={p}")["rows"] for p in (1, 2))
    assert len(first) == len(second) == 7 and not {r["trace_id"] for r in first} & {r["trace_id"] for r in second}


# A dataset for the text search: Unicode letters and digits, words cut by punctuation. "Straße" is
# "STRASSE" in upper case, so a search for "straße" also looks for "STRASSE".
WORDS = [
    ("Straße und Maß", "<think>naïve café, x² + y² = r²</think> done"),
    ("STRASSE", "<think>ΣΟΦΙΑ and σοφίας</think> 日本語の文章"),
    ("Which triangle?", "<think>a right triangle: the triangle's sides</think> 3.14"),
    ("Right-angled triangles", "<think>modulo 7</think> none"),
]
LATER = [("Straße, later", "<think>ingested after the build</think> x")]


@pytest.fixture(scope="module")
def words_server(tmp_path_factory):
    """A server on a warehouse of WORDS whose trace_words models are built, and LATER ingested after that build."""
    from mementos.ingest.pipeline import run_ingest
    from mementos.warehouse.engine import build

    tmp = tmp_path_factory.mktemp("search")
    db = tmp / "wh" / "w.duckdb"
    for name, texts in (("words", WORDS), ("later", LATER)):
        rows = [{"problem": p, "response": r, "domain": "math", "source": "s", "difficulty": "1"} for p, r in texts]
        run_ingest(str(write_hub_dir(tmp / name, rows)), db, name=name, with_tokens=False, workers=0, progress=False)
        if name == "words":
            assert build(db, select=["trace_words+"]).ok
    s = Server(db, tmp / "serve-tmp")
    yield s
    s.stop()


@pytest.mark.parametrize("q, expected", [
    ("straße", ["later:0", "words:0", "words:1"]),  # STRASSE too; later:0 was never indexed, its text is read
    ("本語", ["words:1"]),  # inside a word: no spaces in Japanese
    ("σοφ", ["words:1"]),  # ΣΟΦΙΑ (upper case) and σοφίας
    ("y²", ["words:0"]),  # ² is a digit (Unicode N)
    ("² +", ["words:0"]),  # a word's end, then punctuation: the candidate's text is read
    ("right triangle", ["words:2", "words:3"]),  # every word, in any order: "Right-angled triangles" too
    ('"right triangle"', ["words:2"]),  # a quoted phrase, as written
    ("ANGLED TRIANGLE", ["words:3"]),  # as "angled triangle" inside "Right-angled triangles"
    ("triangle's", ["words:2", "words:3"]),  # the words triangle and s
    ('"triangle\'s"', ["words:2"]),
    ("Triangle", ["words:2", "words:3"]),
    ("?", ["words:2"]),  # no letter or digit: every text is read
    ("  modulo 7  ", ["words:3"]),  # spaces around are dropped
    ("xylophone", []),
    ("sides 3", ["words:2"]),  # "sides" and the 3 of 3.14
    ('"sides 3"', []),  # the phrase is in no text
    ("sides xylophone", []),
])
def test_text_search_cases(words_server, q, expected):
    found = words_server.json("/traces.json?" + urlencode({"q": q, "page_size": 1000}))
    assert sorted(r["trace_id"] for r in found["rows"]) == expected


@pytest.mark.parametrize("q", ["modulo", "MODULO N", "window.__pwned = 1", "alert(7)</script>", "{{ 7 * 7 }}",
                               "ESC", "not markup", "\\frac{1}", "the", "e", "?", "zzz", '"not markup"',
                               '"x = "', '"}}"'])
def test_text_search_finds_what_reading_every_text_finds(server, warehouse, q):
    db, _ = warehouse
    with mementos.connect(db) as con:
        phrase = search.phrase_of(q)
        words = [] if phrase is not None else search.words_of(con, q)
        groups = [spellings(w) for w in words] or [spellings(q if phrase is None else phrase)]
        expected = sorted(search.containing(con, groups, None))
    found = server.json("/traces.json?" + urlencode({"q": q, "page_size": 1000}))
    assert sorted(r["trace_id"] for r in found["rows"]) == expected


def test_the_search_cuts_words_as_the_model_does():
    assert f"'{search.WORD}'" in (REPO / "models" / f"{search.MODEL}.sql").read_text()


@pytest.mark.parametrize("query, message", [
    ("page_size=1001", "page_size='1001' must be a whole number from 1 to 1,000"),
    ("page=0", "page='0' must be a whole number 1 or more"),
    ("min_ratio=abc", "min_ratio='abc' is not a number; give e.g. min_ratio=0.2"),
    ("sort=problem", "sort='problem' is not a column the list sorts by"),
])
def test_bad_parameters_are_one_line_400s(server, query, message):
    error = server.json(f"/traces.json?{query}", status=400)["error"]
    assert error.startswith(message) and "\n" not in error


def test_a_trace_page_and_its_json_twin(server, warehouse):
    db, _ = warehouse
    trace_id = "sample:7"
    data = server.json(f"/traces/{quote(trace_id, safe='')}.json")
    with mementos.connect(db) as con:
        expected = con.execute("SELECT kind, block_idx, text FROM segments WHERE trace_id = ? "
                               "ORDER BY block_idx NULLS LAST, kind", [trace_id]).fetchall()
    assert [(s["kind"], s["index"], s["text"]) for s in data["segments"]] == expected
    assert data["alignment"]["link"] == "hash" and len(data["retention"]) == data["summary"]["n_blocks"]
    status, page = server.get(f"/traces/{quote(trace_id, safe='')}")
    assert status == 200 and html.escape(data["segments"][0]["text"][:200], quote=False) in page


def test_previous_and_next_follow_the_list_it_came_from(server):
    rows = server.json("/traces.json?domain=code&sort=-ratio&page_size=3")["rows"]
    middle = server.json(f"/traces/{quote(rows[1]['trace_id'], safe='')}.json?domain=code&sort=-ratio")
    assert (middle["previous"], middle["next"], middle["position"]) == (rows[0]["trace_id"], rows[2]["trace_id"], 2)
    status, page = server.get(f"/traces/{quote(rows[1]['trace_id'], safe='')}?domain=code&sort=-ratio")
    assert f'href="/traces/{quote(rows[2]["trace_id"], safe="")}?domain=code&amp;sort=-ratio" rel="next"' in page


def test_an_unknown_trace_is_a_404_in_one_line(server):
    assert server.json("/traces/nope%3A1.json", status=404) == {
        "error": "no trace 'nope:1' in this warehouse; the trace list (/traces) has every trace id"}


def test_models_list_versions_build_times_and_rows(server, warehouse):
    models = {m["name"]: m for m in server.json("/models.json")["models"]}
    assert models["trace_compression"]["rows"] == count(warehouse[0], "SELECT count(*) FROM trace_compression")
    assert models["trace_compression"]["built_at"] and models["trace_compression"]["version"] == "2"


def _elements(page: str) -> tuple[set[str], set[str]]:
    """The tag names and attribute names of a page, as a browser's parser sees them."""
    from html.parser import HTMLParser

    found: tuple[set[str], set[str]] = (set(), set())

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found[0].add(tag)
            found[1].update(name for name, _ in attrs)

    Parser().feed(page)
    return found


def test_every_page_escapes_the_hostile_texts(server, warehouse):
    _, ids = warehouse
    pages = ["/", "/traces?" + urlencode({"dataset": DATASET}), "/traces?" + urlencode({"q": "pwned"}),
             "/sql?" + urlencode({"sql": f"SELECT problem, '{PAYLOADS[0]}' AS x FROM traces WHERE dataset = "
                                         f"'{DATASET.replace(chr(39), chr(39) * 2)}'"})]
    pages += [f"/traces/{quote(i, safe='')}" for i in ids]
    for path in pages:
        status, page = server.get(path)
        assert status == 200, (path, page[:300])
        for payload in [p for p in PAYLOADS + [DATASET] if "<" in p]:  # as text (javascript:alert(3) is harmless)
            assert payload not in page, (path, payload)
        tags, attributes = _elements(page)
        assert not tags & {"script", "img", "svg", "iframe", "object", "embed"}, (path, tags)
        assert not {a for a in attributes if a.startswith("on")}, (path, attributes)


def test_the_sql_console_answers_in_json_with_a_row_cap(tmp_path, warehouse):
    # the limit bounds the streamed CSV too: 2 s leaves room for a loaded machine
    server = Server(warehouse[0], tmp_path / "tmp", "--max-rows", "5", "--sql-time-limit", "2")
    try:
        assert server.json("/sql.json?" + urlencode({"sql": "SELECT 1 AS one"})) == {
            "columns": ["one"], "rows": [[1]], "truncated": False}
        capped = server.json("/sql.json?" + urlencode({"sql": "SELECT * FROM range(12) AS t(i)"}))
        assert capped == {"columns": ["i"], "rows": [[i] for i in range(5)], "truncated": True}
        status, csv_text = server.get("/sql.csv?" + urlencode({"sql": "SELECT i, 'a,b' AS s FROM range(12) t(i)"}))
        assert status == 200 and csv_text.splitlines() == ["i,s"] + [f'{i},"a,b"' for i in range(12)]
        status, lines = server.get("/sql.jsonl?" + urlencode({"sql": "SELECT * FROM range(12) AS t(i)"}))
        assert [json.loads(line) for line in lines.splitlines()] == [{"i": i} for i in range(12)]
        slow = server.json("/sql.json?" + urlencode({"sql": "SELECT sum(hash(i)) FROM range(10000000000000) t(i)"}),
                           status=400)
        assert slow["error"].startswith("the query ran longer than the time limit of 2 s and was stopped")
        for kind in ("DESCRIBE traces", "SHOW TABLES", "SUMMARIZE SELECT 1 AS x",
                     "WITH a AS (SELECT 2 AS x) SELECT x FROM a", "EXPLAIN SELECT 1"):
            assert server.json("/sql.json?" + urlencode({"sql": kind}))["columns"]
    finally:
        server.stop()


HOSTILE = [
    "COPY traces TO '{tmp}/out.csv'", "COPY (SELECT 1) TO '{data}/planted.parquet'", "EXPORT DATABASE '{tmp}/exported'",
    "ATTACH '{tmp}/other.duckdb' AS other", "ATTACH ':memory:' AS other", "DETACH memory", "INSTALL httpfs",
    "LOAD httpfs", "FORCE INSTALL json", "UPDATE EXTENSIONS", "SET enable_external_access = true",
    "SET allowed_directories = ['/']", "RESET lock_configuration", "SET GLOBAL lock_configuration = false",
    "PRAGMA enable_profiling", "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
    "CREATE TABLE planted AS SELECT 1", "CREATE TEMP TABLE planted AS SELECT 1", "CREATE VIEW planted AS SELECT 1",
    "CREATE MACRO planted() AS 1", "INSERT INTO ingest_runs SELECT * FROM ingest_runs", "DELETE FROM ingest_runs",
    "UPDATE ingest_runs SET dataset = 'x'", "DROP VIEW traces", "ALTER VIEW traces RENAME TO gone", "VACUUM",
    "CHECKPOINT", "CALL pragma_version()", "PREPARE p AS SELECT 1", "EXECUTE p", "USE memory", "BEGIN TRANSACTION",
    "SELECT 1; SELECT 2", "SELECT 1; COPY traces TO '{tmp}/out2.csv'", "EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp}/x.csv'",
    "SELECT * FROM read_text('/etc/passwd')", "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_blob('/proc/self/environ')", "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_text('{data}/../../../../etc/passwd')", "SELECT * FROM 'https://example.com/x.csv'",
    "SELECT * FROM read_parquet('{tmp}/*.parquet')", "SELECT * FROM query('COPY (SELECT 1) TO ''{tmp}/q.csv''')",
    "SELECT * FROM duckdb_secrets()", "PIVOT traces ON status USING count(*)", "",
]


def _files(*folders: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for folder in folders for p in folder.rglob("*")
            if p.is_file()}


def test_hostile_statements_are_refused_and_change_no_file(tmp_path, warehouse):
    db, _ = warehouse
    tmp = tmp_path / "tmp"
    server = Server(db, tmp)
    try:
        server.json("/sql.json?sql=SELECT%20count(*)%20FROM%20segments")  # DuckDB's own files exist before the snapshot
        before = _files(db.parent, tmp)
        errors = []
        for statement in HOSTILE:
            sql = statement.format(tmp=tmp, data=f"{db}.data")
            error = server.json("/sql.json?" + urlencode({"sql": sql}), status=400)["error"]
            assert error and "\n" not in error, (sql, error)
            errors.append(error)
        assert len(errors) >= 30
        assert _files(db.parent, tmp) == before
        assert not any(tmp.rglob("*.csv")) and not (tmp / "exported").exists()
        assert server.json("/traces.json?page_size=1")["total"] == SAMPLE_TRACES + 4  # and it still works
    finally:
        server.stop()


def test_a_build_published_while_serving_is_seen_by_the_next_request(tmp_path):
    """A write during the server's life: pages keep working, then show the new state."""
    from mementos.ingest.pipeline import run_ingest
    from mementos.sample import write_sample

    db = tmp_path / "w.duckdb"
    write_sample(tmp_path / "a", 30, seed=5)
    run_ingest(str(tmp_path / "a"), db, config="default", name="a", with_tokens=False, workers=0, progress=False)
    server = Server(db, tmp_path / "tmp")
    try:
        assert server.json("/traces.json?page_size=1")["total"] == 30
        assert server.json("/.json")["problem"].startswith(f"the warehouse {db} lacks the models")
        write_sample(tmp_path / "b", 20, seed=6)
        run_ingest(str(tmp_path / "b"), db, config="default", name="b", with_tokens=False, workers=0, progress=False)
        after = server.json("/traces.json?page_size=1")
        assert after["total"] == 50 and {f["value"] for f in after["facets"]["dataset"]} == {"a", "b"}
        assert server.json("/traces/b%3A3.json")["dataset"] == "b"
    finally:
        server.stop()


def test_a_missing_warehouse_or_busy_port_is_one_line(tmp_path, server, warehouse):
    missing = subprocess.run([sys.executable, str(REPO / "cli.py"), "serve", "--db", str(tmp_path / "no.duckdb")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and missing.stderr.strip().splitlines() == [
        f"Error: no warehouse at {tmp_path / 'no.duckdb'}; create one with `mementos ingest SOURCE --db "
        f"{tmp_path / 'no.duckdb'}` first"]
    port = server.url.rsplit(":", 1)[1]
    busy = subprocess.run([sys.executable, str(REPO / "cli.py"), "serve", "--db", str(warehouse[0]), "--port", port],
                          capture_output=True, text=True, timeout=60)
    assert busy.returncode != 0 and busy.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port (or --host)"]


def test_without_a_search_index_it_says_how_to_build_one(tmp_path):
    from mementos.ingest.pipeline import run_ingest
    from mementos.warehouse.engine import build

    db = tmp_path / "wh" / "w.duckdb"
    rows = [{"problem": "p", "response": "<think>r</think> a", "domain": "math", "source": "s", "difficulty": "1"}]
    run_ingest(str(write_hub_dir(tmp_path / "src", rows)), db, name="one", with_tokens=False, workers=0,
               progress=False)
    assert build(db).ok
    server = Server(db, tmp_path / "tmp")
    assert server.json("/traces.json?" + urlencode({"q": "r"}))["total"] == 1  # read from the text
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=30) == 0
    assert server.proc.stdout.read() == (
        f"mementos serve: text search reads every text; `mementos build --db {db} --select trace_words+` "
        f"builds its index\nmementos serve: stopped\n")


def test_ctrl_c_stops_it_cleanly(tmp_path, warehouse):
    server = Server(warehouse[0], tmp_path / "tmp")
    assert server.json("/traces.json?page_size=1")["total"] == SAMPLE_TRACES + 4
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=30) == 0
    assert server.proc.stdout.read() == "mementos serve: stopped\n"
