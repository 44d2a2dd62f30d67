"""Input shapes (ingest/adapters.py): hand-written fixtures per shape with their expected traces and segments,
the rejected rows and their accounting, the export round trip per kind, and the unsegmented path through
ingest, build, report and show."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import memento, row, write_jsonl
from mementos.cli import main
from mementos.foundation import storage
from mementos.foundation.errors import SourceError
from mementos.ingest.adapters import input_spec
from mementos.ingest.pipeline import run_ingest
from mementos.warehouse.summaries import format_ingest_summary

TWO_PAIRS = memento([("Six sevens: 6 * 7.", "6*7"), ("That is 42.", "It is 42.")], answer="42")


def ingest(source, db, name="t", **options):
    spec = input_spec(**{k: options.pop(k) for k in ("format", "columns", "mapping", "keep") if k in options})
    return run_ingest(str(source), db, name=name, workers=0, progress=False, with_tokens=False, spec=spec, **options)


def query(db, sql):
    with storage.connect(db) as con:
        return con.execute(sql).fetchall()


def traces(db):
    return query(db, "SELECT trace_id, status, problem, turn, context FROM traces ORDER BY source_row, trace_id")


def segments(db, trace_id=None):
    where = f"WHERE trace_id = '{trace_id}'" if trace_id else ""
    return query(db, f"SELECT trace_id, kind, block_idx, text FROM segments {where} "
                     "ORDER BY trace_id, char_start")


def user(text):
    return {"role": "user", "content": text}


def assistant(content, reasoning=None):
    return {"role": "assistant", "content": content, **({"reasoning_content": reasoning} if reasoning else {})}


# --- chat messages --------------------------------------------------------------------------------

def test_chat_with_inline_think_gives_the_same_segments_as_the_openmementos_row(tmp_path):
    chat = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [user("What is 6 x 7?"), assistant(TWO_PAIRS)],
                                                  "domain": "math", "difficulty": 3}])
    plain = write_jsonl(tmp_path / "plain.jsonl", [row(TWO_PAIRS)])
    ingest(chat, tmp_path / "c.duckdb")
    ingest(plain, tmp_path / "p.duckdb")
    assert traces(tmp_path / "c.duckdb") == [("t:0", "ok", "What is 6 x 7?", None, None)]
    assert segments(tmp_path / "c.duckdb") == segments(tmp_path / "p.duckdb") == [
        ("t:0", "block", 0, "Six sevens: 6 * 7."), ("t:0", "summary", 0, "6*7"),
        ("t:0", "block", 1, "That is 42."), ("t:0", "summary", 1, "It is 42."), ("t:0", "answer", None, "42")]
    assert query(tmp_path / "c.duckdb", "SELECT domain, difficulty FROM traces") == [("math", "3")]


def test_multi_turn_each_assistant_turn_with_reasoning_is_a_trace_with_its_context(tmp_path):
    conversation = [{"role": "system", "content": "Be brief."}, user("Q1"), assistant("A1", reasoning="R1"),
                    user("Q2"), assistant("plain reply, no reasoning"), user("Q3"),
                    assistant("A3", reasoning=TWO_PAIRS.split("</think>")[0].removeprefix("<think>"))]
    ingest(write_jsonl(tmp_path / "m.jsonl", [{"messages": conversation}]), tmp_path / "w.duckdb")
    system = {"role": "system", "content": "Be brief."}
    assert [(t, s, p, turn, json.loads(c)) for t, s, p, turn, c in traces(tmp_path / "w.duckdb")] == [
        ("t:0.1", "unsegmented", "Q1", 1, [system]),
        ("t:0.3", "ok", "Q3", 3, [system, user("Q1"), {"role": "assistant", "content": "A1"}, user("Q2"),
                                  {"role": "assistant", "content": "plain reply, no reasoning"}])]
    assert segments(tmp_path / "w.duckdb", "t:0.1") == [("t:0.1", "reasoning", None, "R1"),
                                                        ("t:0.1", "answer", None, "A1")]
    assert [s[1:] for s in segments(tmp_path / "w.duckdb", "t:0.3")] == [
        ("block", 0, "Six sevens: 6 * 7."), ("summary", 0, "6*7"), ("block", 1, "That is 42."),
        ("summary", 1, "It is 42."), ("answer", None, "A3")]


HOSTILE = [
    "<think><|block_start|>a<|block_start|>b<|block_end|><|summary_start|>s<|summary_end|></think>x",
    "<think><|block_start|>a<|summary_start|>s<|summary_end|></think>x",
    "<|block_start|>a<|block_end|><|summary_start|>s<|summary_end|></think>x",
    "<think><|summary_start|>s<|summary_end|></think>x <|block_end|>",
    "<think>\n\n</think>",
    "<think>raw é中😀 thought</think>\n42",
]


@pytest.mark.parametrize("shape", ["chat", "sharegpt"])
def test_hostile_markup_parses_the_same_in_the_chat_shapes(tmp_path, shape):
    def conversation(response):
        if shape == "chat":
            return {"messages": [user("p"), assistant(response)]}
        return {"conversations": [{"from": "human", "value": "p"}, {"from": "gpt", "value": response}]}

    ingest(write_jsonl(tmp_path / "s.jsonl", [conversation(r) for r in HOSTILE]), tmp_path / "s.duckdb")
    ingest(write_jsonl(tmp_path / "p.jsonl", [row(r) for r in HOSTILE]), tmp_path / "p.duckdb")
    for sql in ("SELECT trace_id, status FROM traces ORDER BY source_row",
                "SELECT trace_id, code, char_offset FROM parse_issues ORDER BY ALL",
                "SELECT trace_id, kind, block_idx, char_start, char_end, text FROM segments ORDER BY ALL"):
        assert query(tmp_path / "s.duckdb", sql) == query(tmp_path / "p.duckdb", sql)
    with storage.connect(tmp_path / "s.duckdb") as con:  # the offsets cut each text out of its response
        assert con.execute("SELECT count(*) FROM segments s JOIN traces t USING (trace_id) "
                           "WHERE substring(t.response, s.char_start + 1, s.n_chars) <> s.text").fetchall() == [(0,)]


@pytest.mark.parametrize("fmt", ["chat", "sharegpt", "columns"])
def test_the_sample_in_each_shape_gives_the_openmementos_sample_traces(tmp_path, fmt):
    from mementos.sample import write_sample_as
    from mementos.sample.shapes import COLUMNS_OPTIONS

    write_sample_as(tmp_path / "om", 300, seed=4)
    write_sample_as(tmp_path / fmt, 300, fmt, seed=4)
    ingest(tmp_path / "om", tmp_path / "om.duckdb", name="s")
    options = {"columns": COLUMNS_OPTIONS.split()[1], "keep": "model"} if fmt == "columns" else {}
    summary = ingest(tmp_path / fmt, tmp_path / "x.duckdb", name="s", **options)
    same = ("SELECT t.trace_id, t.status, t.content_hash, s.kind, s.block_idx, s.char_start, s.char_end "
            "FROM traces t LEFT JOIN segments s USING (trace_id) WHERE t.response <> '' ORDER BY ALL")
    assert query(tmp_path / "x.duckdb", same) == query(tmp_path / "om.duckdb", same)
    # the sample's empty responses: flagged in the column shapes, no trace at all in a conversation
    [(empty,)] = query(tmp_path / "om.duckdb", "SELECT count(*) FROM traces WHERE response = ''")
    assert empty >= 1
    rejected = 0 if fmt == "columns" else empty
    assert (summary.rows_read, summary.rows_rejected, dict(summary.rejected_counts)) == (
        300, rejected, {"empty_response": rejected} if rejected else {})


# --- ShareGPT, mapped columns ---------------------------------------------------------------------

def test_sharegpt_conversations(tmp_path):
    rows = [{"conversations": [{"from": "system", "value": "sys"}, {"from": "human", "value": "Why?"},
                               {"from": "gpt", "value": "<think>Because.</think> So."}], "source": "openthoughts"}]
    ingest(write_jsonl(tmp_path / "g.jsonl", rows), tmp_path / "w.duckdb")
    assert [(t, s, p, json.loads(c)) for t, s, p, _, c in traces(tmp_path / "w.duckdb")] == [
        ("t:0", "unsegmented", "Why?", [{"role": "system", "content": "sys"}])]
    assert segments(tmp_path / "w.duckdb") == [("t:0", "reasoning", None, "Because."), ("t:0", "answer", None, "So.")]
    assert query(tmp_path / "w.duckdb", "SELECT source FROM traces") == [("openthoughts",)]


def responses_and_segments(db):
    """Each trace's response, and its segments with the check that its offsets cut its text out of it."""
    out = {}
    for trace_id, status, response in query(db, "SELECT trace_id, status, response FROM traces ORDER BY 1"):
        rows = query(db, f"SELECT kind, block_idx, char_start, char_end, text FROM segments "
                         f"WHERE trace_id = '{trace_id}' ORDER BY char_start")
        assert all(response[a:b] == text for _, _, a, b, text in rows), trace_id
        out[trace_id] = (status, response, [(kind, idx, text) for kind, idx, _, _, text in rows])
    return out


OPENTHOUGHTS = ("<|begin_of_thought|>\n\nSix sevens.\n\nSo 42.\n\n<|end_of_thought|>\n\n"
                "<|begin_of_solution|>\n\nThe answer is 42.\n\n<|end_of_solution|>")


def test_openthoughts_thought_and_solution_markers_are_reasoning_and_answer(tmp_path):
    """OpenThoughts-114k's gpt turns: thought and solution markers, in either conversation shape; a thought
    holding memento markup gives its pairs; an unclosed thought is flagged as an unclosed think."""
    pairs = "<|begin_of_thought|>" + TWO_PAIRS.removeprefix("<think>").replace("</think>", "<|end_of_thought|>")
    rows = [{"conversations": [{"from": "human", "value": "6 x 7?"}, {"from": "gpt", "value": OPENTHOUGHTS}]},
            {"conversations": [{"from": "human", "value": "6 x 7?"}, {"from": "gpt", "value": pairs}]},
            {"conversations": [{"from": "human", "value": "6 x 7?"},
                               {"from": "gpt", "value": "<|begin_of_thought|> cut off"}]}]
    ingest(write_jsonl(tmp_path / "g.jsonl", rows), tmp_path / "g.duckdb")
    chat = [{"messages": [user("6 x 7?"), assistant(OPENTHOUGHTS)]}]
    ingest(write_jsonl(tmp_path / "c.jsonl", chat), tmp_path / "c.duckdb")
    got = responses_and_segments(tmp_path / "g.duckdb")
    assert got == {
        "t:0": ("unsegmented", "<think>\n\n\nSix sevens.\n\nSo 42.\n\n\n</think>\n\n\n\nThe answer is 42.\n\n",
                [("reasoning", None, "Six sevens.\n\nSo 42."), ("answer", None, "The answer is 42.")]),
        "t:1": ("ok", "<think>\n" + TWO_PAIRS.removeprefix("<think>").replace("</think>\n\n", "\n</think>\n\n"),
                [("block", 0, "Six sevens: 6 * 7."), ("summary", 0, "6*7"), ("block", 1, "That is 42."),
                 ("summary", 1, "It is 42."), ("answer", None, "42")]),
        "t:2": ("flagged", "<think>\n cut off", []),
    }
    assert query(tmp_path / "g.duckdb", "SELECT code FROM parse_issues WHERE trace_id = 't:2' ORDER BY 1") == [
        ("no_blocks",), ("unclosed_think",)]
    assert responses_and_segments(tmp_path / "c.duckdb") == {"t:0": got["t:0"]}


def test_message_property_mappings_name_the_role_and_content_keys(tmp_path):
    """axolotl's message_property_mappings in a mapping file: messages of {from, value} read as chat."""
    mapping = tmp_path / "map.toml"
    mapping.write_text('field_messages = "dialog"\n[message_property_mappings]\nrole = "from"\ncontent = "value"\n')
    rows = [{"dialog": [{"from": "system", "value": "Be brief."}, {"from": "user", "value": "6 x 7?"},
                        {"from": "assistant", "value": TWO_PAIRS, "reasoning_content": None}]},
            {"dialog": [{"from": "human", "value": "Sky?"}, {"from": "gpt", "value": "Blue.",
                                                             "reasoning_content": "Rayleigh."}]}]
    ingest(write_jsonl(tmp_path / "m.jsonl", rows), tmp_path / "w.duckdb", mapping=str(mapping))
    assert [(t, s, p, c) for t, s, p, _, c in traces(tmp_path / "w.duckdb")] == [
        ("t:0", "ok", "6 x 7?", '[{"role": "system", "content": "Be brief."}]'), ("t:1", "unsegmented", "Sky?", None)]
    assert {t: (s, segs) for t, (s, _, segs) in responses_and_segments(tmp_path / "w.duckdb").items()} == {
        "t:0": ("ok", [("block", 0, "Six sevens: 6 * 7."), ("summary", 0, "6*7"), ("block", 1, "That is 42."),
                       ("summary", 1, "It is 42."), ("answer", None, "42")]),
        "t:1": ("unsegmented", [("reasoning", None, "Rayleigh."), ("answer", None, "Blue.")])}
    mapping.write_text('[message_property_mappings]\nspeaker = "from"\n')
    with pytest.raises(SourceError, match=r"message_property_mappings maps role and content to a message's keys"):
        input_spec(mapping=str(mapping))


def test_mapped_columns_with_kept_metadata(tmp_path):
    rows = [{"question": "Q", "output": TWO_PAIRS, "topic": "math", "model": "m1", "ts": 7},
            {"question": "Q2", "output": None, "topic": "math", "model": "m2", "ts": 8}]
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    summary = ingest(src, tmp_path / "w.duckdb", columns="problem=question,response=output,domain=topic",
                     keep="model,ts")
    assert query(tmp_path / "w.duckdb", "SELECT trace_id, problem, domain, status, n_blocks, metadata->>'model', "
                                        "CAST(metadata->>'ts' AS INTEGER) FROM traces") == [
        ("t:0", "Q", "math", "ok", 2, "m1", 7)]
    assert query(tmp_path / "w.duckdb", "SELECT dataset, source_row, reason FROM rejected_rows") == [
        ("t", 1, "unmapped_column")]
    assert (summary.rows_read, summary.default_rows, summary.rows_rejected) == (2, 1, 1)


@pytest.mark.parametrize("suffix, text", [
    (".toml", 'format = "columns"\nkeep = ["model"]\n[columns]\nproblem = "question"\nresponse = "output"\n'),
    (".yaml", "format: columns\nkeep: [model]\ncolumns:\n  problem: question\n  response: output\n"),
])
def test_a_mapping_file_maps_as_the_options_do(tmp_path, suffix, text):
    mapping = tmp_path / f"map{suffix}"
    mapping.write_text(text)
    src = write_jsonl(tmp_path / "c.jsonl", [{"question": "Q", "output": "<think>r</think>a", "model": "m"}])
    ingest(src, tmp_path / "w.duckdb", mapping=str(mapping))
    assert query(tmp_path / "w.duckdb", "SELECT problem, status, metadata FROM traces") == [
        ("Q", "unsegmented", '{"model": "m"}')]


def test_shape_errors_say_what_to_do(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "Q", "completion": "A"}])
    with pytest.raises(SourceError, match="no column 'answer' for the columns shape .* --columns problem=COL,response=COL"):
        ingest(src, tmp_path / "w.duckdb", format="columns", columns="problem=prompt,response=answer")
    with pytest.raises(SourceError, match=r"each part is TARGET=COLUMN"):
        input_spec(columns="question")
    with pytest.raises(SourceError, match="missing column 'problem'"):
        ingest(src, tmp_path / "w.duckdb")
    chat = write_jsonl(tmp_path / "m.jsonl", [{"messages": [user("Q"), assistant("<think>r</think>a")]}])
    with pytest.raises(SourceError, match="read in the OpenMementos shape only"):
        ingest(chat, tmp_path / "w.duckdb", config="all")


# --- nothing dropped silently ---------------------------------------------------------------------

def test_every_row_is_a_trace_or_a_rejected_row_with_its_reason(tmp_path):
    rows = [{"messages": [user("Q"), assistant("<think>r</think>a")]},   # 0: a trace
            {"messages": [user("only a question")]},                       # 1: no_assistant_turn
            {"messages": []},                                              # 2: no_assistant_turn
            {"messages": [user("Q"), assistant("")]},                      # 3: empty_response
            {"messages": [user("Q"), assistant("Just an answer.")]},       # 4: no_reasoning
            {"messages": [user("Q"), assistant(TWO_PAIRS)]}]               # 5: a trace
    db = tmp_path / "w.duckdb"
    summary = ingest(write_jsonl(tmp_path / "r.jsonl", rows), db)
    assert query(db, "SELECT source_file LIKE '%r.jsonl', source_row, reason FROM rejected_rows ORDER BY 2") == [
        (True, 1, "no_assistant_turn"), (True, 2, "no_assistant_turn"), (True, 3, "empty_response"),
        (True, 4, "no_reasoning")]
    [(read, rejected, reasons, unsegmented)] = query(
        db, "SELECT rows_read, rows_rejected, rejected_reasons, rows_unsegmented FROM ingest_runs")
    assert (read, rejected, json.loads(reasons), unsegmented) == (
        6, 4, {"empty_response": 1, "no_assistant_turn": 2, "no_reasoning": 1}, 1)
    assert read == query(db, "SELECT count(*) FROM traces")[0][0] + query(db, "SELECT count(*) FROM rejected_rows")[0][0]
    text = format_ingest_summary(summary)
    assert "  rejected             4" in text and "    no_assistant_turn                 2" in text


def test_a_new_run_replaces_the_rejected_rows_of_the_dataset(tmp_path):
    db = tmp_path / "w.duckdb"
    ingest(write_jsonl(tmp_path / "a.jsonl", [{"messages": [user("Q")]}]), db)
    ingest(write_jsonl(tmp_path / "b.jsonl", [{"messages": [user("Q"), assistant("<think>r</think>a")]}]), db)
    assert query(db, "SELECT count(*) FROM rejected_rows") == [(0,)]


# --- export round trip ----------------------------------------------------------------------------

ROUND_TRIP_ROWS = [row(TWO_PAIRS, problem="What is 6 x 7?"),
                   row(memento([("Rayleigh: 1/lambda^4.", "Rayleigh")], answer="Blue."), problem="Sky?", domain="sci")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from mementos.warehouse.export import ExportSpec
    from mementos.warehouse.export import export as run_export

    tmp = tmp_path_factory.mktemp("round_trip")
    db = tmp / "w.duckdb"
    run_ingest(str(write_jsonl(tmp / "in.jsonl", ROUND_TRIP_ROWS)), db, name="orig", workers=0, progress=False)
    for kind in ("memento", "compressed", "summarize", "plain"):
        run_export(db, ExportSpec(kind, tmp / kind, splits={"train": 1}))
    return tmp


def _texts(db, kind):
    return query(db, f"SELECT text FROM segments WHERE kind = '{kind}' ORDER BY trace_id, char_start")


@pytest.mark.parametrize("kind", ["memento", "compressed", "summarize", "plain"])
def test_export_then_ingest_gives_back_the_block_and_memento_texts(exported, tmp_path, kind):
    db = tmp_path / "back.duckdb"
    summary = ingest(exported / kind / "train.jsonl", db, name="back")
    original = exported / "w.duckdb"
    blocks, mementos = _texts(original, "block"), _texts(original, "summary")
    assert (blocks, mementos) == ([("Six sevens: 6 * 7.",), ("That is 42.",), ("Rayleigh: 1/lambda^4.",)],
                                  [("6*7",), ("It is 42.",), ("Rayleigh",)])
    assert summary.rows_rejected == 0
    # compressed and plain records carry the texts their training text leaves out: every kind gives back
    # ok traces with the same blocks and mementos (and answers, but summarize's, which has none)
    assert (_texts(db, "block"), _texts(db, "summary")) == (blocks, mementos)
    assert {s for (s,) in query(db, "SELECT DISTINCT status FROM traces")} == {"ok"}
    if kind != "summarize":
        assert _texts(db, "answer") == _texts(original, "answer") == [("42",), ("Blue.",)]
        assert query(db, "SELECT problem FROM traces ORDER BY trace_id") == [("What is 6 x 7?",), ("Sky?",)]
    kept = query(db, "SELECT DISTINCT metadata->>'exported_trace_id' FROM traces ORDER BY 1")
    assert kept == [("orig:0",), ("orig:1",)]
    assert query(db, "SELECT DISTINCT domain FROM traces ORDER BY 1") == [("math",), ("sci",)]


# --- the unsegmented path: ingest, build, report, show ----------------------------------------------

def test_unsegmented_traces_through_build_report_and_show(tmp_path):
    from rich.console import Console

    from mementos.warehouse import report
    from mementos.warehouse.show import show

    rows = [row(TWO_PAIRS), row("<think>Step one.\n\nStep two.\n\nstep  ONE.\n</think>\n\n42"),
            row("<think> </think>x")]
    db = tmp_path / "w.duckdb"
    summary = ingest(write_jsonl(tmp_path / "u.jsonl", rows), db, name="u")
    assert (summary.rows_ok, summary.rows_unsegmented, summary.rows_flagged) == (1, 1, 1)
    result = CliRunner().invoke(main, ["build", "--db", str(db), "--quiet"])
    assert result.exit_code == 0, result.output
    assert query(db, "SELECT trace_id, reasoning_chars, paragraphs, repeated_paragraphs, answer_empty "
                     "FROM unsegmented_traces") == [("u:1", 32, 3, 1, False)]
    assert query(db, "SELECT traces, flagged_traces, unsegmented_traces FROM compression_breakdown "
                     "WHERE is_total") == [(1, 1, 1)]
    assert query(db, "SELECT trace_id FROM analysed_traces") == [("u:0",)]
    out = report.write_report(db, tmp_path / "r.html", echo=lambda _: None).out.read_text()
    assert '<div class="v">1</div><div class="k">unsegmented (reasoning without mementos' in out
    # its trace view: the reasoning whole, where an ok trace has its pairs (no "no pairs recovered")
    view = out[out.index("<summary>u:1 · math · unsegmented: 32 reasoning chars</summary>"):].split("</details>")[0]
    assert "the longest unsegmented trace (reasoning without mementos)" in view
    assert "no blocks: reasoning of 32 chars  </div>" in view  # ingested without token counts
    assert ('<div class="label">reasoning, without mementos (32 reasoning chars)</div>\n'
            '  <div class="text reasoning">Step one.\n\nStep two.\n\nstep  ONE.</div>') in view
    assert "no block/memento pairs recovered" not in view
    assert '<div class="text answer">42</div>' in view
    console = Console(record=True, width=100, highlight=False, color_system=None)
    show(db, "u:1", console)
    text = console.export_text()
    assert "status unsegmented" in text and "reasoning, without mementos" in text and "Step two." in text
    _the_explorer_shows_the_reasoning(db, tmp_path / "serve")


def _the_explorer_shows_the_reasoning(db, tmp):
    """The explorer's trace page of u:1: its status, and a reasoning panel where the pairs would be."""
    from test_serve import Server

    server = Server(db, tmp)
    try:
        data = server.json("/traces/u%3A1.json")
        status, page = server.get("/traces/u%3A1")
    finally:
        server.stop()
    assert data["status"] == "unsegmented"
    assert [(s["kind"], s["text"]) for s in data["segments"]] == [
        ("reasoning", "Step one.\n\nStep two.\n\nstep  ONE."), ("answer", "42")]
    assert status == 200
    assert "<dt>status</dt><dd>unsegmented</dd>" in page
    assert "<dt>blocks</dt><dd>none: reasoning without mementos, 32 reasoning chars</dd>" in page
    assert ('<h2>Reasoning, without mementos <span class="dim">(32 reasoning chars)</span></h2>\n'
            '<div id="reasoning"><pre class="text">Step one.\n\nStep two.\n\nstep  ONE.</pre></div>') in page
    assert "Blocks and mementos" not in page and "no block/memento pairs recovered" not in page


def test_label_columns_alone_map_onto_the_openmementos_shape(tmp_path):
    src = write_jsonl(tmp_path / "o.jsonl", [{**row(TWO_PAIRS), "topic": "algebra"}])
    ingest(src, tmp_path / "w.duckdb", columns="domain=topic")
    assert query(tmp_path / "w.duckdb", "SELECT domain, status, n_blocks FROM traces") == [("algebra", "ok", 2)]


def test_the_turns_of_one_conversation_stay_in_one_batch_of_a_batched_model(tmp_path):
    from mementos.warehouse.batches import trace_batches

    turns = [user("Q1"), assistant("a", reasoning="r1"), user("Q2"), assistant("b", reasoning="r2")]
    db = tmp_path / "w.duckdb"
    ingest(write_jsonl(tmp_path / "b.jsonl", [{"messages": turns}] * 3), db)
    with storage.connect(db) as con:
        assert trace_batches(con, 1) == [("t", 0, 0), ("t", 1, 1), ("t", 2, 2)]  # 6 traces, 2 per source row
