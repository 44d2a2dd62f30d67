"""`export`: the four kinds on a hand-written corpus, splits, filters, determinism, crashes, loading."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import REPO, memento, row, write_jsonl
from mementos.ingest.parser import BLOCK_END, BLOCK_START, SUMMARY_END, SUMMARY_START, THINK_CLOSE, THINK_OPEN, parse_response
from mementos.ingest.pipeline import run_ingest
from mementos.foundation.tokens import count_tokens
from mementos.cli import parse_splits
from mementos.warehouse.export import (CARD, MANIFEST, SUMMARIZE_INSTRUCTION, ExportSpec, LeftOut, near_duplicate_groups,
                                       normalize_problem, problem_key, split_of)
from mementos.warehouse.export import export as run_export
from mementos.warehouse.export.spec import check_splits
from mementos.foundation.errors import WarehouseError

INSTRUCTION = ("Write the memento of this reasoning block: a short summary that keeps every result, value and "
               "decision needed to continue the reasoning without the block.")
ONE_SPLIT = {"train": 1}


def export(db, kind, out, models_dir=None, **options):
    """The library's export of ExportSpec(kind, out, **options)."""
    return run_export(db, ExportSpec(kind, out, **options), models_dir=models_dir)

SIX_SEVENS = [("Six sevens: 6 * 7.", "6*7"), ("That is 42.", "It is 42.")]
LONG_BLOCK = " ".join(f"step{i}" for i in range(400))
HAND_ROWS = [
    row(memento(SIX_SEVENS), problem="What is 6 x 7?", domain="math"),                          # hand:0
    row(memento([("Rayleigh scattering goes as 1/lambda^4.", "Rayleigh")], answer="Blue scatters more."),
        problem="Why is the sky blue?", domain="science"),                                       # hand:1
    row(memento(SIX_SEVENS), problem="What is 6 x 7?", domain="math"),                          # hand:2 = hand:0
    row("<think>\n<|block_start|>\nA lone block.\n<|block_end|>\n<|summary_start|>\nlone\n<|summary_end|>\n"
        "<|block_start|>\ncut off", problem="A truncated one.", domain="math"),                  # hand:3 flagged
    row(memento([(LONG_BLOCK, "400 steps.")], answer="done"), problem="Count to 400.", domain="code"),  # hand:4
    row(memento([("Seven sixes.", "7*6")], answer="42"), problem="What  is 6 x\n7?", domain="math"),  # hand:5
]


def hand_expected(kind: str) -> dict[str, list]:
    """The exact messages of each kept example of the hand-written corpus, written out by hand."""
    problem = "What is 6 x 7?"
    if kind == "memento":
        return {
            "hand:0": [{"role": "user", "content": problem}, {"role": "assistant", "content": HAND_ROWS[0]["response"]}],
            "hand:1": [{"role": "user", "content": "Why is the sky blue?"},
                       {"role": "assistant", "content": HAND_ROWS[1]["response"]}],
        }
    if kind == "compressed":
        return {
            "hand:0": [{"role": "user", "content": problem}, {"role": "assistant", "content": (
                f"{THINK_OPEN}\n{SUMMARY_START}\n6*7\n{SUMMARY_END}\n{SUMMARY_START}\nIt is 42.\n{SUMMARY_END}\n"
                f"{THINK_CLOSE}\n\nThe answer is 42.")}],
            "hand:1": [{"role": "user", "content": "Why is the sky blue?"}, {"role": "assistant", "content": (
                "<think>\n<|summary_start|>\nRayleigh\n<|summary_end|>\n</think>\n\nBlue scatters more.")}],
        }
    if kind == "plain":
        return {
            "hand:0": [{"role": "user", "content": problem}, {"role": "assistant", "content": (
                "<think>\nSix sevens: 6 * 7.\n\nThat is 42.\n</think>\n\nThe answer is 42.")}],
            "hand:1": [{"role": "user", "content": "Why is the sky blue?"}, {"role": "assistant", "content": (
                "<think>\nRayleigh scattering goes as 1/lambda^4.\n</think>\n\nBlue scatters more.")}],
        }
    assert kind == "summarize"
    return {
        "hand:0/0": [{"role": "user", "content": INSTRUCTION + "\n\nSix sevens: 6 * 7."},
                     {"role": "assistant", "content": "6*7"}],
        "hand:0/1": [{"role": "user", "content": INSTRUCTION + "\n\nThat is 42."},
                     {"role": "assistant", "content": "It is 42."}],
        "hand:1/0": [{"role": "user", "content": INSTRUCTION + "\n\nRayleigh scattering goes as 1/lambda^4."},
                     {"role": "assistant", "content": "Rayleigh"}],
    }


KINDS = ("memento", "compressed", "summarize", "plain")


@pytest.fixture(scope="module")
def hand_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export_hand")
    src = write_jsonl(tmp / "hand.jsonl", HAND_ROWS)
    db = tmp / "w.duckdb"
    run_ingest(str(src), db, name="hand", workers=0, progress=False)
    return db


SAMPLE_TRACES = 200  # the fewest with every kind of broken trace (mementos.sample.EVERY_KIND_MIN_TRACES)


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    from mementos.sample import write_sample

    tmp = tmp_path_factory.mktemp("export_sample")
    write_sample(tmp / "sample", SAMPLE_TRACES, seed=3)
    db = tmp / "w.duckdb"
    run_ingest(str(tmp / "sample"), db, name="sample", with_tokens=False, workers=0, progress=False)
    return db


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def key(record: dict) -> str:
    return record["trace_id"] + (f"/{record['block_idx']}" if "block_idx" in record else "")


def files_of(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------
# The kinds, exactly


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_writes_exactly_the_expected_messages(hand_db, tmp_path, kind):
    result = export(hand_db, kind, tmp_path / kind, splits=ONE_SPLIT)
    records = read_jsonl(tmp_path / kind / "train.jsonl")
    # hand:2 is a duplicate of hand:0, hand:3 is flagged; hand:4 and hand:5 are left aside for brevity
    got = {key(r): r["messages"] for r in records if not r["trace_id"].startswith(("hand:4", "hand:5"))}
    assert got == hand_expected(kind)
    order = [(int(r["trace_id"][5:]), r.get("block_idx", 0)) for r in records]
    assert order == sorted(order)
    assert all(r["status"] == "ok" for r in records)
    assert result.left_out["duplicate"] == (2 if kind == "summarize" else 1)  # hand:2's examples
    assert result.left_out["flagged"] == 1  # hand:3 (one example: its one complete pair, for summarize)


def test_the_record_columns_and_token_counts(hand_db, tmp_path):
    export(hand_db, "memento", tmp_path / "m", splits=ONE_SPLIT)
    first = read_jsonl(tmp_path / "m" / "train.jsonl")[0]
    assert list(first) == ["messages", "trace_id", "domain", "source", "difficulty", "status", "n_tokens", "spans"]
    assert (first["trace_id"], first["domain"], first["source"], first["difficulty"]) == ("hand:0", "math", "unit", "3")
    # the whole example as written: the problem, and the response with its markup (was: the segments only, 29)
    assert first["n_tokens"] == sum(count_tokens([m["content"] for m in first["messages"]])) == 92
    export(hand_db, "summarize", tmp_path / "s", splits=ONE_SPLIT)
    first = read_jsonl(tmp_path / "s" / "train.jsonl")[0]
    assert list(first) == ["messages", "trace_id", "block_idx", "domain", "source", "difficulty", "status", "n_tokens"]
    assert first["messages"][0]["content"] == SUMMARIZE_INSTRUCTION + "\n\n" + SIX_SEVENS[0][0]
    assert first["n_tokens"] == sum(count_tokens([SUMMARIZE_INSTRUCTION + "\n\n" + SIX_SEVENS[0][0], SIX_SEVENS[0][1]]))


def test_spans_cut_each_segment_out_of_the_assistant_turn(hand_db, tmp_path):
    """hand:0 has two pairs and an answer; each kind's spans give exactly those texts, in content order."""
    blocks, mementos = [b for b, _ in SIX_SEVENS], [m for _, m in SIX_SEVENS]
    expected = {
        "memento": [("block", 0, blocks[0]), ("memento", 0, mementos[0]), ("block", 1, blocks[1]),
                    ("memento", 1, mementos[1]), ("answer", None, "The answer is 42.")],
        "compressed": [("memento", 0, mementos[0]), ("memento", 1, mementos[1]), ("answer", None, "The answer is 42.")],
        "plain": [("block", 0, blocks[0]), ("block", 1, blocks[1]), ("answer", None, "The answer is 42.")],
    }
    for kind, segments in expected.items():
        for fmt in ("jsonl", "parquet"):
            export(hand_db, kind, tmp_path / f"{kind}-{fmt}", fmt=fmt, splits=ONE_SPLIT)
            path = tmp_path / f"{kind}-{fmt}" / f"train.{fmt}"
            records = read_jsonl(path) if fmt == "jsonl" else pq.read_table(path).to_pylist()
            first = records[0]
            assert first["trace_id"] == "hand:0"
            content = first["messages"][1]["content"]
            got = [(s["kind"], s["block_idx"], content[s["start"]:s["end"]]) for s in first["spans"]]
            assert got == segments, (kind, fmt)
            assert list(first["spans"][0]) == ["kind", "block_idx", "start", "end"]
            # what the assistant turn leaves out, carried as texts (ingest rebuilds the trace from both)
            carried = {"compressed": ("blocks", blocks), "plain": ("mementos", mementos)}.get(kind)
            if carried:
                assert first[carried[0]] == [{"block_idx": i, "text": t} for i, t in enumerate(carried[1])]
    # every record of every kind: the spans are in order, do not overlap and lie inside the content
    for kind in expected:
        for r in read_jsonl(tmp_path / f"{kind}-jsonl" / "train.jsonl"):
            ends = [0] + [s["end"] for s in r["spans"]]
            assert all(ends[i] <= s["start"] <= s["end"] for i, s in enumerate(r["spans"]))
            assert ends[-1] <= len(r["messages"][1]["content"])


def _collator_from_the_docs() -> dict:
    """The code of README.md's "The stage-2 attention mask" section, run as it is written there."""
    doc = (REPO / "README.md").read_text(encoding="utf-8")
    section = doc[doc.index("### The stage-2 attention mask"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("\n```\n")]
    namespace: dict = {}
    exec(compile(code, "README.md (stage-2 collator)", "exec"), namespace)
    return namespace


def _expected_mask(enc, record, ids):
    """The stage-2 mask computed another way: token k is block i's when its characters overlap block i's span;
    query q may not see it when q starts at or after memento i's end; otherwise causal."""
    import numpy as np

    starts, at = [], 0
    for t in ids:  # the character each token starts at, from the UTF-8 bytes of each token
        chunk = enc.decode_single_token_bytes(t)
        starts.append(max(0, at - (1 if chunk and 0x80 <= chunk[0] < 0xC0 else 0)))
        at += sum(1 for byte in chunk if not 0x80 <= byte < 0xC0)
    starts = np.array(starts)
    ends = np.append(starts[1:], len(record["messages"][1]["content"]))
    in_spans = sum(((starts < s["end"]) & (ends > s["start"])).astype(int) for s in record["spans"])
    assert in_spans.max() == 1  # the markup between segments: no token is part of two segments
    memento_end = {s["block_idx"]: s["end"] for s in record["spans"] if s["kind"] == "memento"}
    hidden_from = np.full(len(ids), np.inf)  # per key token: queries starting here or later do not see it
    for s in record["spans"]:
        if s["kind"] == "block" and s["block_idx"] in memento_end:
            overlaps = (starts < s["end"]) & (ends > s["start"])
            hidden_from[overlaps] = memento_end[s["block_idx"]]
    causal = np.tril(np.ones((len(ids), len(ids)), dtype=bool))
    return causal & ~(starts[:, None] >= hidden_from[None, :])


def test_the_stage2_collator_in_warehouse_md_hides_each_block_after_its_memento(hand_db, sample_db, tmp_path):
    """warehouse.md's collator, with the offline cl100k tokenizer, on exported memento records: the mask equals
    causal attention minus exactly the block tokens, for every token from the end of the block's memento on."""
    import numpy as np

    collator = _collator_from_the_docs()
    enc = collator["enc"]
    export(hand_db, "memento", tmp_path / "hand", splits=ONE_SPLIT)
    export(sample_db, "memento", tmp_path / "sample", splits=ONE_SPLIT)
    sample = [r for r in read_jsonl(tmp_path / "sample" / "train.jsonl") if len(r["messages"][1]["content"]) < 12_000]
    records = read_jsonl(tmp_path / "hand" / "train.jsonl") + sample[:5]
    assert len(records) == 9 and all(len(r["spans"]) >= 3 for r in records)
    for record in records:
        ids, mask = collator["stage2_example"](record)
        assert ids == enc.encode_ordinary(record["messages"][1]["content"])
        assert np.array_equal(mask, _expected_mask(enc, record, ids)), record["trace_id"]
        assert (~mask & np.tril(np.ones_like(mask))).sum() > 0  # something is hidden in every record
    # hand:0 by eye: the answer's last token sees both mementos and the answer, and no word of either block
    first = records[0]
    ids, mask = collator["stage2_example"](first)
    seen = enc.decode([t for t, visible in zip(ids, mask[-1]) if visible])
    assert "6*7" in seen and "It is 42." in seen and "The answer is 42." in seen
    assert "Six" not in seen and "That" not in seen


def test_plain_is_the_raw_chain_of_thought(hand_db, tmp_path):
    """No memento markup is left; the parser reads it back as a think section without pairs and the same answer."""
    export(hand_db, "plain", tmp_path / "p", splits=ONE_SPLIT)
    for record in read_jsonl(tmp_path / "p" / "train.jsonl"):
        content = record["messages"][1]["content"]
        assert not any(token in content for token in (BLOCK_START, BLOCK_END, SUMMARY_START, SUMMARY_END))
        parsed = parse_response(content)
        assert (parsed.status, parsed.issues) == ("unsegmented", [])
        original = parse_response(HAND_ROWS[int(record["trace_id"][5:])]["response"])
        assert [s.text for s in parsed.segments if s.kind == "answer"] == \
            [s.text for s in original.segments if s.kind == "answer"]


def test_flagged_traces_only_when_asked(hand_db, tmp_path):
    result = export(hand_db, "plain", tmp_path / "f", splits=ONE_SPLIT, include_flagged=True)
    records = {r["trace_id"]: r for r in read_jsonl(tmp_path / "f" / "train.jsonl")}
    assert result.left_out["flagged"] == 0
    assert records["hand:3"]["status"] == "flagged"
    # whatever the parser recovered: both blocks, no answer
    assert records["hand:3"]["messages"][1]["content"] == "<think>\nA lone block.\n\ncut off\n</think>\n\n"
    summarize = export(hand_db, "summarize", tmp_path / "fs", splits=ONE_SPLIT, include_flagged=True)
    pairs = [key(r) for r in read_jsonl(tmp_path / "fs" / "train.jsonl") if r["trace_id"] == "hand:3"]
    assert pairs == ["hand:3/0"]  # the block without a memento makes no example
    assert summarize.left_out["flagged"] == 0


# ---------------------------------------------------------------------------
# Splits


def test_parse_splits_and_check_splits():
    """The command line parses --split into {name: fraction}; the export checks the values."""
    parsed = parse_splits("train=0.98,validation=0.01,test=0.01")
    assert parsed == {"train": 0.98, "validation": 0.01, "test": 0.01} and list(parsed) == ["train", "validation", "test"]
    assert parse_splits(" a=0.5 , b=0.5 ") == {"a": 0.5, "b": 0.5}
    for bad in ("train", "train=x", "a=0.5,a=0.5"):
        with pytest.raises(WarehouseError, match="--split"):
            parse_splits(bad)
    for bad in ({"train": 0.9}, {"a/b": 1}, {"a": 1.5, "b": -0.5}):
        with pytest.raises(WarehouseError, match="--split"):
            check_splits(bad)


def test_split_of_depends_on_the_normalised_problem_and_the_seed():
    splits = {"a": 0.5, "b": 0.5}
    assert normalize_problem("  What  is\t6 x\n7? ") == "What is 6 x 7?"
    for seed in range(20):
        assert split_of("What is 6 x 7?", seed, splits) == split_of(" What  is 6 x\n\n7?", seed, splits)
    assert len({split_of("What is 6 x 7?", seed, splits) for seed in range(20)}) == 2
    problems = [f"problem {i}" for i in range(2000)]
    share = sum(split_of(p, 0, splits) == "a" for p in problems) / len(problems)
    assert 0.45 < share < 0.55
    assert {split_of(p, 0, {"a": 0, "b": 1}) for p in problems} == {"b"}


MARBLES = ("A bag contains $10$ red and $22$ blue marbles. Two marbles are drawn without replacement. The probability "
           "that they have the same color is $\\frac{m}{n}$ in lowest terms. Find $m + n$.")
REWORDED = ("A bag holds $10$ red and $22$ blue marbles. Two marbles are drawn without replacement. The probability "
            "that they have the same colour is $\\frac{m}{n}$ in lowest terms. Find $m + n$.")  # two words changed
SWAPPED = MARBLES.replace("$10$ red and $22$", "$22$ red and $10$")  # the same problem: the numbers kept
OTHER_NUMBERS = MARBLES.replace("$10$ red", "$11$ red")  # another problem of the same template
GRID = ("Given a grid of $n \\times m$ cells, each either free or blocked, output the length of the shortest path "
        "from the top-left to the bottom-right cell.")


def test_near_duplicate_groups():
    """Rewordings that keep the numbers (or swap them) are grouped; the same template with another number is not."""
    problems = [MARBLES, REWORDED, SWAPPED, OTHER_NUMBERS, GRID, "  " + GRID + " ", ""]
    groups, stats = near_duplicate_groups(iter([problems[:3], problems[3:]]), seed=0)
    keys = {p: problem_key(p, 0) for p in problems}
    root = min(keys[MARBLES], keys[REWORDED], keys[SWAPPED])
    assert groups == {keys[MARBLES]: root, keys[REWORDED]: root, keys[SWAPPED]: root}
    assert (stats["problems"], stats["groups_merged"], stats["problems_in_them"], stats["largest_group"]) == (6, 1, 3, 3)
    assert (stats["threshold"], stats["bands"], stats["rows_per_band"]) == (0.6, 18, 7)


def test_near_duplicates_go_to_one_split(tmp_path):
    halves = {"a": 0.5, "b": 0.5}
    problems = (MARBLES, REWORDED, SWAPPED, OTHER_NUMBERS, GRID)
    # for each seed, the splits of the three near duplicates: one split with their group, as many as
    # their own problems give without it (the export's split_of, over near_duplicate_groups)
    together, apart = [], []
    for seed in range(8):
        groups, _ = near_duplicate_groups(iter([list(problems)]), seed)
        together.append(len({split_of(p, seed, halves, groups) for p in problems[:3]}))
        apart.append(len({split_of(p, seed, halves) for p in problems[:3]}))
    assert together == [1] * 8 and max(apart) == 2
    # end to end, with a seed that would have split them apart
    seed = apart.index(2)
    rows = [row(memento([("b", "s")]), problem=p) for p in problems]
    db = tmp_path / "w.duckdb"
    run_ingest(str(write_jsonl(tmp_path / "n.jsonl", rows)), db, name="n", workers=0, progress=False)
    result = export(db, "memento", tmp_path / "out", splits=halves, seed=seed)
    where = {r["trace_id"]: split for split in ("a", "b") for r in read_jsonl(tmp_path / "out" / f"{split}.jsonl")}
    assert where["n:0"] == where["n:1"] == where["n:2"]
    assert result.near_duplicates["groups_merged"] == 1 and result.near_duplicates["problems_in_them"] == 3
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["near_duplicates"] | {"method": None} == {
        "method": None, "threshold": 0.6, "permutations": 128, "shingle_words": 2, "bands": 18, "rows_per_band": 7,
        "problems": 5, "groups_merged": 1, "problems_in_them": 3, "largest_group": 3}


def test_no_problem_is_shared_between_splits(sample_db, tmp_path):
    result = export(sample_db, "memento", tmp_path / "out", splits={"train": 0.6, "validation": 0.2, "test": 0.2}, seed=11)
    seen: dict[str, str] = {}
    total = 0
    for split in ("train", "validation", "test"):
        records = read_jsonl(tmp_path / "out" / f"{split}.jsonl")
        assert records, split
        total += len(records)
        for r in records:
            problem = normalize_problem(r["messages"][0]["content"])
            assert seen.setdefault(problem, split) == split, f"{problem[:60]!r} in {seen[problem]} and {split}"
    assert total == result.rows and len(seen) < total  # problems do repeat in the sample, so this means something
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["candidates"] == total + sum(manifest["left_out"].values()) == SAMPLE_TRACES
    assert manifest["left_out"]["flagged"] > 0 and manifest["left_out"]["duplicate"] >= 0
    assert {s: manifest["splits"][s]["rows"] for s in manifest["splits"]} == \
        {s: len(read_jsonl(tmp_path / "out" / f"{s}.jsonl")) for s in ("train", "validation", "test")}
    # ingested without tokens, yet counted: n_tokens is made at export
    train_tokens = [r["n_tokens"] for r in read_jsonl(tmp_path / "out" / "train.jsonl")]
    assert (manifest["splits"]["train"]["tokens"]["min"], manifest["splits"]["train"]["tokens"]["max"]) == (
        min(train_tokens), max(train_tokens))


def test_same_seed_gives_byte_identical_files(sample_db, tmp_path):
    for fmt in ("jsonl", "parquet"):
        a = export(sample_db, "compressed", tmp_path / f"a-{fmt}", fmt=fmt, splits={"train": 0.8, "test": 0.2}, seed=4)
        export(sample_db, "compressed", tmp_path / f"b-{fmt}", fmt=fmt, splits={"train": 0.8, "test": 0.2}, seed=4)
        assert files_of(tmp_path / f"a-{fmt}") == files_of(tmp_path / f"b-{fmt}")
        assert set(files_of(tmp_path / f"a-{fmt}")) == {f"train.{fmt}", f"test.{fmt}", MANIFEST, "README.md"}
        other = export(sample_db, "compressed", tmp_path / f"c-{fmt}", fmt=fmt, splits={"train": 0.8, "test": 0.2}, seed=5)
        assert other.splits["test"]["rows"] != a.splits["test"]["rows"] or \
            files_of(tmp_path / f"c-{fmt}")[f"test.{fmt}"] != files_of(tmp_path / f"a-{fmt}")[f"test.{fmt}"]


# ---------------------------------------------------------------------------
# Filters


def test_max_tokens_leaves_out_longer_examples(hand_db, tmp_path):
    full = {r["trace_id"]: r["n_tokens"] for r in read_jsonl_after(export, hand_db, tmp_path / "all")}
    limit = full["hand:4"] - 1
    assert all(n <= limit for t, n in full.items() if t != "hand:4")
    result = export(hand_db, "memento", tmp_path / "short", splits=ONE_SPLIT, max_tokens=limit)
    kept = [r["trace_id"] for r in read_jsonl(tmp_path / "short" / "train.jsonl")]
    assert kept == ["hand:0", "hand:1", "hand:5"]
    assert result.left_out == {"flagged": 1, "domain": 0, "outlier": 0, "duplicate": 1, "too_long": 1, "empty": 0,
                               "copied": 0}
    manifest = json.loads((tmp_path / "short" / MANIFEST).read_text())
    assert manifest["filters"]["max_tokens"] == limit
    assert manifest["splits"]["train"]["tokens"]["max"] <= limit
    # exactly at the limit is kept
    exact = export(hand_db, "memento", tmp_path / "exact", splits=ONE_SPLIT, max_tokens=full["hand:4"])
    assert exact.left_out["too_long"] == 0


def test_exclude_outliers_all_or_by_reason(hand_db, tmp_path):
    """outlier_traces lists hand:2 (duplicate) and hand:3 (flagged); hand:5's answer "42" is an answer, not empty."""
    every = export(hand_db, "memento", tmp_path / "all", splits=ONE_SPLIT, exclude_outliers=True)
    assert [r["trace_id"] for r in read_jsonl(tmp_path / "all" / "train.jsonl")] == [
        "hand:0", "hand:1", "hand:4", "hand:5"]
    # hand:3 is flagged before it is an outlier; hand:2 is an outlier (its reason: duplicate) before a duplicate
    assert every.left_out == {"flagged": 1, "domain": 0, "outlier": 1, "duplicate": 0, "too_long": 0, "empty": 0,
                              "copied": 0}
    assert every.left_out_outliers == {"duplicate": 1}
    manifest = json.loads((tmp_path / "all" / MANIFEST).read_text())
    assert manifest["filters"]["exclude_outliers"] == "all"
    assert manifest["left_out_outliers"] == {"duplicate": 1}
    assert "outlier_traces" in manifest["models"]
    # only the flagged reason: hand:3 is left out as flagged first, hand:2 as a duplicate, not as an outlier
    one = export(hand_db, "memento", tmp_path / "one", splits=ONE_SPLIT, exclude_outliers=["flagged"])
    assert [r["trace_id"] for r in read_jsonl(tmp_path / "one" / "train.jsonl")] == [
        "hand:0", "hand:1", "hand:4", "hand:5"]
    assert (one.left_out["outlier"], one.left_out["duplicate"], one.left_out_outliers) == (0, 1, {})
    with pytest.raises(WarehouseError, match=r"no trace in outlier_traces has the reason ratio_hgh; "
                                             r"reasons present: duplicate, flagged"):
        export(hand_db, "memento", tmp_path / "typo", splits=ONE_SPLIT, exclude_outliers=["ratio_hgh"])


OUTLIERS_BY_ROW = """/*
name: outlier_traces
version: 99
kind: table
grain: [trace_id, reason]
description: one row per trace and reason, a reason column; the other columns gone
*/
SELECT trace_id, 'too_many_blocks' AS reason, 7.5 AS score FROM all_traces WHERE trace_id IN ('hand:0', 'hand:4')
UNION ALL SELECT trace_id, 'empty_answer', 1.0 FROM all_traces WHERE trace_id IN ('hand:4', 'hand:5')
"""
OUTLIERS_AS_LIST = """/*
name: outlier_traces
version: 98
kind: table
grain: [trace_id]
description: reasons as a list
*/
SELECT trace_id, ['too_many_blocks', 'empty_answer'] AS reasons FROM all_traces WHERE trace_id = 'hand:4'
UNION ALL SELECT trace_id, ['empty_answer'] FROM all_traces WHERE trace_id = 'hand:5'
"""


@pytest.mark.parametrize("definition", [OUTLIERS_BY_ROW, OUTLIERS_AS_LIST], ids=["row_per_reason", "list"])
def test_exclude_outliers_reads_other_shapes_of_the_model(hand_db, tmp_path, definition):
    """Only trace_id and the reason(s) are read: one row per reason with `reason`, or `reasons` as a list."""
    import shutil

    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    (models / "outlier_traces.sql").write_text(definition)
    result = export(hand_db, "memento", tmp_path / "o", splits=ONE_SPLIT, models_dir=models,
                    exclude_outliers=["empty_answer"])
    assert [r["trace_id"] for r in read_jsonl(tmp_path / "o" / "train.jsonl")] == ["hand:0", "hand:1"]
    # hand:4's first reason is too_many_blocks, but only empty_answer was asked for: it is counted under that
    assert result.left_out_outliers == {"empty_answer": 2}


def test_summarize_leaves_out_mementos_that_copy_their_block(tmp_path):
    """One definition with outlier_traces (models/memento_copies.sql): at least 80% of the block's chars, and,
    lowercased with whitespace runs one space, within the block or holding it."""
    block = "Then 25 - 4 = 21, and 21 is the count."  # 38 chars: its first 33 are 87%, its first 30 79%
    rows = [row(memento([("Add 2 and 3 to get 5.", "Add  2 and 3\nto get 5."),        # the block again
                         ("Now square it: 25.", "Now square it: 25. So 25."),          # the block and more
                         ("Check: 5 * 5 = 25.", "25 checked."),
                         (block, block[:33]),                                          # 87% of it, verbatim
                         (block, block[:30]),                                          # 79%: a memento
                         ("Halve It To Get 12.5 Then.", "halve it to get 12.5 then.")]),  # the block in lower case
                problem="Square 2 + 3.")]
    db = tmp_path / "w.duckdb"
    run_ingest(str(write_jsonl(tmp_path / "c.jsonl", rows)), db, name="c", workers=0, progress=False)
    result = export(db, "summarize", tmp_path / "s", splits=ONE_SPLIT)
    assert [key(r) for r in read_jsonl(tmp_path / "s" / "train.jsonl")] == ["c:0/2", "c:0/4"]
    assert result.left_out["copied"] == 4
    assert "copied" in result.format()


def read_jsonl_after(export_fn, db, out):
    export_fn(db, "memento", out, splits=ONE_SPLIT)
    return read_jsonl(out / "train.jsonl")


def test_domain_filter(hand_db, tmp_path):
    result = export(hand_db, "memento", tmp_path / "sci", splits=ONE_SPLIT, domain="science")
    assert [r["trace_id"] for r in read_jsonl(tmp_path / "sci" / "train.jsonl")] == ["hand:1"]
    # hand:3 is flagged before it is out of the domain; hand:2 is out of the domain before it is a duplicate
    assert result.left_out == {"flagged": 1, "domain": 4, "outlier": 0, "duplicate": 0, "too_long": 0, "empty": 0,
                               "copied": 0}
    math = export(hand_db, "plain", tmp_path / "math", splits=ONE_SPLIT, domain="math")
    assert [r["trace_id"] for r in read_jsonl(tmp_path / "math" / "train.jsonl")] == ["hand:0", "hand:5"]
    assert math.left_out["duplicate"] == 1
    assert json.loads((tmp_path / "math" / MANIFEST).read_text())["filters"]["domain"] == "math"


def test_an_unknown_domain_is_an_error_that_lists_the_domains(hand_db, tmp_path):
    with pytest.raises(WarehouseError, match=r"^--domain maths: no trace has this domain; "
                                             r"domains present: code, math, science$"):
        export(hand_db, "memento", tmp_path / "o", splits=ONE_SPLIT, domain="maths")
    assert not (tmp_path / "o").exists()


def test_an_export_of_nothing_is_an_error_unless_allow_empty(hand_db, tmp_path):
    with pytest.raises(WarehouseError, match=r"^export memento would write no examples: of 6 candidates, left out: "
                                             r"1 flagged, 1 duplicate, 4 too_long; change the filters, or pass "
                                             r"--allow-empty"):
        export(hand_db, "memento", tmp_path / "o", splits=ONE_SPLIT, max_tokens=1)
    assert list(tmp_path.iterdir()) == []  # no directory, no stage beside it: nothing was written
    result = export(hand_db, "memento", tmp_path / "o", splits=ONE_SPLIT, max_tokens=1, allow_empty=True)
    assert result.rows == 0 and (tmp_path / "o" / "train.jsonl").read_bytes() == b""


def test_manifest_fields(hand_db, tmp_path):
    result = export(hand_db, "compressed", tmp_path / "m", fmt="parquet", splits={"train": 0.5, "test": 0.5}, seed=1)
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["kind"] == "compressed" and manifest["format"] == "parquet"
    assert set(manifest["models"]) == {"export_base", "export_compressed"}
    assert all(set(m) == {"version", "fingerprint"} for m in manifest["models"].values())
    [run] = manifest["ingest_runs"]
    assert run["dataset"] == "hand" and run["traces"] == len(HAND_ROWS)
    assert manifest["filters"]["seed"] == 1 and manifest["filters"]["split"] == {"train": 0.5, "test": 0.5}
    assert list(manifest["left_out"]) == list(LeftOut)
    for name, split in manifest["splits"].items():
        path = tmp_path / "m" / split["file"]
        assert pq.ParquetFile(path).metadata.num_rows == split["rows"]
        assert path.stat().st_size == split["bytes"]
        if split["rows"]:
            assert split["tokens"]["min"] <= split["tokens"]["median"] <= split["tokens"]["p95"] <= split["tokens"]["max"]
    assert sum(s["rows"] for s in manifest["splits"].values()) == result.rows == 4


# ---------------------------------------------------------------------------
# Crashes


def stages(out: Path) -> list[Path]:
    """The stages of exports into `out`: the directories beside it the export writes into."""
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and p.name.endswith(".export-tmp")]


def complete_export(out: Path) -> str:
    """The split fractions of the export `out` holds, once every file its manifest lists is there with the
    sha256 it lists, and nothing else is."""
    manifest = json.loads((out / MANIFEST).read_text())
    files = {s["file"]: s["sha256"] for s in manifest["splits"].values()} | {CARD: manifest["card_sha256"]}
    assert sorted(p.name for p in out.iterdir()) == sorted([*files, MANIFEST])
    assert {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in files} == files
    return ",".join(f"{name}={fraction:g}" for name, fraction in manifest["filters"]["split"].items())


@pytest.mark.parametrize("point", ["export.mid_write", "export.before_rename"])
def test_killed_export_leaves_no_partial_file(hand_db, tmp_path, point):
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "cli.py"), "export", "memento", "--db", str(hand_db), "--out", str(out),
           "--split", "train=1"]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "MEMENTOS_KILL_AT": point}, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert not out.exists()  # nothing is at DIR until the whole export is
    assert len(stages(out)) == 1  # the partial files are aside, in the stage

    # a second export over a complete one: killed, the previous files stay as they were
    export(hand_db, "memento", out, splits=ONE_SPLIT)
    assert stages(out) == []  # the killed export's stage was removed
    before = files_of(out)
    proc = subprocess.run(cmd[:-1] + ["train=0.5,test=0.5"], cwd=REPO, env={**os.environ, "MEMENTOS_KILL_AT": point},
                          capture_output=True)
    assert proc.returncode == -9
    assert files_of(out) == before and complete_export(out) == "train=1"


EXPORT_IN_A_PROCESS = ("import sys, mementos.warehouse.output as output; output.EXCHANGE = sys.argv[3] == 'exchange'; "
                       "from mementos.warehouse.export import ExportSpec, export; "
                       "export(sys.argv[1], ExportSpec('memento', sys.argv[2], splits={'a': 0.7, 'b': 0.3}))")


@pytest.mark.parametrize("point, publish, holds", [
    ("export.before_rename", "exchange", "train=0.5,test=0.5"),   # everything written, nothing swapped
    ("export.after_swap", "exchange", "a=0.7,b=0.3"),             # swapped, the old export not yet removed
    ("export.between_renames", "renames", None),                  # no RENAME_EXCHANGE: the old one set aside
    ("export.after_swap", "renames", "a=0.7,b=0.3"),
])
def test_export_killed_in_its_publish_leaves_one_complete_export(hand_db, tmp_path, point, publish, holds):
    """The export is swapped in whole: killed anywhere in the publish, DIR holds the old complete export or
    the new complete one (never a mix); with two renames, killed between them, DIR is missing until the next
    export puts the old one back. The next export removes the stage, which holds the marker."""
    from mementos.warehouse.output import remove_leftovers

    out = tmp_path / "out"
    export(hand_db, "memento", out, splits={"train": 0.5, "test": 0.5})
    proc = subprocess.run([sys.executable, "-c", EXPORT_IN_A_PROCESS, str(hand_db), str(out), publish], cwd=REPO,
                          env={**os.environ, "MEMENTOS_KILL_AT": point}, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert len(stages(out)) == 1
    if holds is None:
        assert not out.exists()
        remove_leftovers(out)  # what the next export does first
        holds = "train=0.5,test=0.5"
    assert complete_export(out) == holds
    export(hand_db, "memento", out, splits={"c": 1})
    assert complete_export(out) == "c=1" and stages(out) == []


def test_a_stage_is_removed_only_when_it_holds_the_marker(hand_db, tmp_path):
    """A killed export's stage (its process gone, its marker inside) is removed by the next export; a
    directory of the same shape of name without the marker is someone's, and stays."""
    from mementos.warehouse.output import MARKER, _marker_text

    out = tmp_path / "out"
    dead = 4194305  # above Linux's largest pid: no such process
    stage = tmp_path / f".out.{dead}.k2j4h5g6.export-tmp"
    (stage / "new").mkdir(parents=True)
    (stage / "new" / "train.jsonl").write_text("partial")
    (stage / MARKER).write_text(_marker_text(out, dead))
    mine = tmp_path / f".out.{dead}.abcdefgh.export-tmp"
    (mine / "photos").mkdir(parents=True)
    (mine / "photos" / "a.jpg").write_bytes(b"jpeg")
    export(hand_db, "memento", out, splits=ONE_SPLIT)
    assert not stage.exists()
    assert (mine / "photos" / "a.jpg").read_bytes() == b"jpeg"


# ---------------------------------------------------------------------------
# Loading with `datasets`


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_datasets_loads_the_files_as_they_are(hand_db, tmp_path, fmt):
    import datasets

    out = tmp_path / "out"
    export(hand_db, "compressed", out, fmt=fmt, splits=ONE_SPLIT)
    builder = "json" if fmt == "jsonl" else "parquet"
    ds = datasets.load_dataset(builder, data_files={"train": str(out / f"train.{fmt}")}, split="train",
                               cache_dir=str(tmp_path / "cache"))
    expected = hand_expected("compressed")
    assert ds.num_rows == 4
    assert ds[0]["trace_id"] == "hand:0" and ds[0]["messages"] == expected["hand:0"]
    assert ds[1]["messages"] == expected["hand:1"]
    assert ds.column_names == ["messages", "trace_id", "domain", "source", "difficulty", "status", "n_tokens",
                               "spans", "blocks"]


def test_datasets_loads_summarize_splits(hand_db, tmp_path):
    import datasets

    out = tmp_path / "out"
    export(hand_db, "summarize", out, fmt="parquet", splits={"train": 0.5, "test": 0.5}, seed=2)
    manifest = json.loads((out / MANIFEST).read_text())
    files = {name: str(out / s["file"]) for name, s in manifest["splits"].items() if s["rows"]}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert {name: ds[name].num_rows for name in ds} == {n: s["rows"] for n, s in manifest["splits"].items() if s["rows"]}
    got = {f"{r['trace_id']}/{r['block_idx']}": r["messages"] for name in ds for r in ds[name]}
    expected = hand_expected("summarize")
    assert {k: got[k] for k in expected} == expected


# ---------------------------------------------------------------------------
# The directory is the export


def test_a_new_export_replaces_the_earlier_one_whole(hand_db, tmp_path):
    """Other split names and another format: the earlier export's files go; the directory is this export."""
    out = tmp_path / "out"
    export(hand_db, "memento", out, fmt="jsonl", splits={"train": 0.5, "validation": 0.25, "test": 0.25})
    assert sorted(p.name for p in out.iterdir()) == [CARD, MANIFEST, "test.jsonl", "train.jsonl", "validation.jsonl"]
    export(hand_db, "memento", out, fmt="parquet", splits={"train": 0.7, "eval": 0.3})
    assert sorted(p.name for p in out.iterdir()) == [CARD, "eval.parquet", MANIFEST, "train.parquet"]
    assert json.loads((out / MANIFEST).read_text())["card"] == CARD


def test_files_no_manifest_lists_stop_the_export_unless_overwrite(hand_db, tmp_path):
    out = tmp_path / "out"
    export(hand_db, "memento", out, splits=ONE_SPLIT)
    (out / "notes.txt").write_text("mine")
    (out / "old").mkdir()
    before = files_of(out)
    with pytest.raises(WarehouseError, match=r"--out .*out holds files that are not part of an earlier export "
                                             r"\(notes\.txt, old/; no earlier export's manifest\.json lists them\); "
                                             r"export into a new or empty directory, or pass --overwrite"):
        export(hand_db, "plain", out, splits=ONE_SPLIT)
    assert files_of(out) == before  # nothing written, nothing removed
    export(hand_db, "plain", out, splits={"a": 0.5, "b": 0.5}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [CARD, "a.jsonl", "b.jsonl", MANIFEST]
    # not even --overwrite deletes the warehouse it reads
    with pytest.raises(WarehouseError, match="holds the warehouse"):
        export(hand_db, "plain", hand_db.parent, splits=ONE_SPLIT, overwrite=True)
    assert hand_db.exists()
    # a directory with split-like files but no manifest is not an export either
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "train.jsonl").write_text("{}\n")
    with pytest.raises(WarehouseError, match="there is no manifest.json of an earlier export"):
        export(hand_db, "plain", stray, splits=ONE_SPLIT)


def test_a_manifest_found_in_out_deletes_nothing_it_does_not_describe(hand_db, tmp_path):
    """A manifest.json planted in DIR naming a user's folder and a file that is not what it says: the export
    stops in one line and both are intact (before, the folder was deleted recursively)."""
    out = tmp_path / "out"
    (out / "photos" / "2024").mkdir(parents=True)
    (out / "photos" / "2024" / "a.jpg").write_bytes(b"jpeg")
    (out / "notes.txt").write_text("mine")
    (out / MANIFEST).write_text(json.dumps({"splits": {"train": {"file": "photos"},
                                                       "test": {"file": "notes.txt", "sha256": "0" * 64}}}))
    with pytest.raises(WarehouseError) as failed:
        export(hand_db, "memento", out, splits=ONE_SPLIT)
    assert str(failed.value) == (
        f"--out {out} holds files that are not part of an earlier export (notes.txt (not the bytes manifest.json "
        f"lists), photos (a directory, which no export writes)); export into a new or empty directory, or pass "
        f"--overwrite to delete them")
    assert (out / "photos" / "2024" / "a.jpg").read_bytes() == b"jpeg" and (out / "notes.txt").read_text() == "mine"


def test_an_earlier_export_file_changed_since_is_not_replaced(hand_db, tmp_path):
    """Only the bytes an earlier export wrote are replaced: a split file edited since stops the export."""
    out = tmp_path / "out"
    export(hand_db, "memento", out, splits=ONE_SPLIT)
    with open(out / "train.jsonl", "a") as f:
        f.write('{"my": "own example"}\n')
    before = files_of(out)
    with pytest.raises(WarehouseError, match=r"^--out .*out holds files that are not part of an earlier export "
                                             r"\(train\.jsonl \(not the bytes manifest\.json lists\)\); "):
        export(hand_db, "memento", out, splits=ONE_SPLIT, seed=4)
    assert files_of(out) == before


def test_a_planted_temp_name_is_never_written_through(hand_db, tmp_path):
    """Links planted at the names temp files had (`.NAME.PID.export-tmp`) point at a victim: the export writes
    its files exclusively into a fresh stage, and the links go with the old directory (--overwrite)."""
    out = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out.mkdir()
    for name in ("train.jsonl", CARD, MANIFEST):
        (out / f".{name}.{os.getpid()}.export-tmp").symlink_to(victim)
    export(hand_db, "memento", out, splits=ONE_SPLIT, overwrite=True)
    assert victim.read_text() == "precious" and complete_export(out) == "train=1"


def test_the_dataset_card(tmp_path):
    """The card's YAML header: configs with the split files, features, split sizes, the source's licence."""
    import yaml

    from mementos.sample import write_sample

    write_sample(tmp_path / "src", 30, seed=2)  # a hub-layout directory whose card says `license: mit`
    db = tmp_path / "w.duckdb"
    run_ingest(str(tmp_path / "src"), db, name="src", with_tokens=False, workers=0, progress=False)
    export(db, "summarize", tmp_path / "out", fmt="parquet", splits={"train": 0.5, "test": 0.5}, seed=1)
    text = (tmp_path / "out" / CARD).read_text()
    header = yaml.safe_load(text.split("---")[1])
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert header["license"] == "mit"
    assert header["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "train.parquet"}, {"split": "test", "path": "test.parquet"}]}]
    assert [f["name"] for f in header["dataset_info"]["features"]] == \
        ["messages", "trace_id", "block_idx", "domain", "source", "difficulty", "status", "n_tokens"]
    assert header["dataset_info"]["features"][2] == {"name": "block_idx", "dtype": "int32"}
    assert header["dataset_info"]["splits"] == [
        {"name": n, "num_bytes": s["bytes"], "num_examples": s["rows"]} for n, s in manifest["splits"].items()]
    assert "seed 1; split fractions train=0.5, test=0.5" in text and "# Memento training set: `summarize`" in text


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_load_dataset_of_the_directory_gives_exactly_the_splits(hand_db, tmp_path, fmt):
    """datasets.load_dataset(DIR): the card's configs, so exactly this export's splits, after an earlier export
    with other splits in the same directory; an empty split keeps its file but is not in the configs
    (`datasets` refuses a split of no rows)."""
    import datasets

    out = tmp_path / "out"
    export(hand_db, "memento", out, fmt="jsonl" if fmt == "parquet" else "parquet", splits={"a": 0.5, "b": 0.5})
    export(hand_db, "plain", out, fmt=fmt, splits={"train": 0.6, "validation": 0.4, "test": 0}, seed=3)
    manifest = json.loads((out / MANIFEST).read_text())
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert {name: ds[name].num_rows for name in ds} == {n: s["rows"] for n, s in manifest["splits"].items()
                                                       if n != "test"}
    assert list(ds) == ["train", "validation"] and manifest["splits"]["test"]["rows"] == 0
    assert (out / f"test.{fmt}").exists() and "not in the configs" in (out / CARD).read_text()
    assert ds["train"].column_names == ["messages", "trace_id", "domain", "source", "difficulty", "status",
                                        "n_tokens", "spans", "mementos"]
    rows = {r["trace_id"]: r for name in ("train", "validation") for r in ds[name]}
    assert rows["hand:0"]["messages"] == hand_expected("plain")["hand:0"]
    assert rows["hand:0"]["spans"][0] == {"kind": "block", "block_idx": 0, "start": 8, "end": 26}


def test_an_empty_split_is_left_out_of_the_card_and_the_command_says_so(hand_db, tmp_path):
    """`datasets` cannot load a split of no rows (zero-byte JSON Lines, Parquet with no row group or an empty
    one: all "corresponds to no data"), so load_dataset(DIR) has no validation split; the command's output says
    so, not only the card."""
    import datasets

    from mementos.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["export", "memento", "--db", str(hand_db), "--out", str(out),
                                       "--split", "train=1,validation=0"])
    assert result.exit_code == 0, result.output
    assert ("empty: not in README.md's configs, so load_dataset(DIR) has no 'validation' split (datasets cannot "
            "load a split of no rows)") in result.output
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert list(ds) == ["train"] and ds["train"].num_rows == 4
    assert (out / "validation.jsonl").read_bytes() == b""


# ---------------------------------------------------------------------------
# CLI wiring


def test_cli_export(hand_db, tmp_path):
    from mementos.cli import main

    result = CliRunner().invoke(main, ["export", "plain", "--db", str(hand_db), "--out", str(tmp_path / "o"),
                                       "--format", "parquet", "--split", "train=1", "--seed", "3",
                                       "--domain", "math", "--max-tokens", "1000", "--include-flagged",
                                       "--exclude-outliers"])
    assert result.exit_code == 0, result.output
    assert "left out:" in result.output and "domain" in result.output
    manifest = json.loads((tmp_path / "o" / MANIFEST).read_text())
    assert manifest["filters"] | {"split": None} == {
        "include_flagged": True, "domain": "math", "max_tokens": 1000, "seed": 3, "split": None,
        "exclude_outliers": "all", "duplicates": manifest["filters"]["duplicates"],
        "problem_groups": manifest["filters"]["problem_groups"]}
    named = CliRunner().invoke(main, ["export", "plain", "--db", str(hand_db), "--out", str(tmp_path / "n"),
                                      "--exclude-outliers", "flagged, duplicate"])
    assert named.exit_code == 0, named.output
    manifest = json.loads((tmp_path / "n" / MANIFEST).read_text())
    assert manifest["filters"]["exclude_outliers"] == ["flagged", "duplicate"]
    assert manifest["left_out_outliers"] == {"duplicate": 1}
    bad = CliRunner().invoke(main, ["export", "plain", "--db", str(hand_db), "--out", str(tmp_path / "x"),
                                    "--split", "train=0.5"])
    assert bad.exit_code != 0 and "add up to" in bad.output


NINE_TO_ONE = {"train": 0.9, "test": 0.1}


@pytest.fixture(scope="module")
def reference_export(sample_db_with_tokens, tmp_path_factory):
    """`reference_export(kind, fmt)`: the directory of sample_db_with_tokens' export of `kind` as `fmt` with the
    default chunks, slices and order, split NINE_TO_ONE; made once a module, the first time a case below asks
    for it (before it patches anything), for them to compare their variations with (they only read it). With
    ingest's token counts: each record's n_tokens then adds its segments' stored counts, columns read beside
    the texts chunk by chunk (and the export tokenizes less, which keeps these cases short)."""
    made: dict[tuple[str, str], Path] = {}

    def reference(kind: str, fmt: str = "jsonl") -> Path:
        if (kind, fmt) not in made:
            out = tmp_path_factory.mktemp(f"reference-{kind}-{fmt}") / "out"
            export(sample_db_with_tokens, kind, out, fmt=fmt, splits=NINE_TO_ONE)
            made[kind, fmt] = out
        return made[kind, fmt]

    return reference


def test_chunk_boundaries_do_not_change_the_bytes(sample_db_with_tokens, reference_export, tmp_path, monkeypatch):
    """Texts are fetched chunk by chunk; small chunks (row groups then straddle many of them) give the same
    files as one chunk."""
    import mementos.warehouse.export.plan as plan_module

    one_chunk = {fmt: files_of(reference_export("summarize", fmt)) for fmt in ("jsonl", "parquet")}
    monkeypatch.setattr(plan_module, "CHUNK_CHARS", 400_000)  # ~10 traces a chunk, ~16 chunks
    for fmt in ("jsonl", "parquet"):
        export(sample_db_with_tokens, "summarize", tmp_path / f"small-{fmt}", fmt=fmt, splits=NINE_TO_ONE)
        assert files_of(tmp_path / f"small-{fmt}") == one_chunk[fmt]


@pytest.mark.parametrize("kind", ["memento", "summarize"])
def test_slices_of_a_chunk_do_not_change_the_bytes(sample_db_with_tokens, reference_export, tmp_path, monkeypatch,
                                                   kind):
    """A chunk's records are built and written a slice of traces at a time; slices of one trace each give the
    same files as one slice per chunk."""
    import mementos.warehouse.export.run as run_module

    whole = files_of(reference_export(kind))  # made before the change below, if not made yet
    monkeypatch.setattr(run_module, "SLICE_CHARS", 1)  # every trace a slice of its own
    export(sample_db_with_tokens, kind, tmp_path / "sliced", splits=NINE_TO_ONE)
    assert files_of(tmp_path / "sliced") == whole


def test_the_plan_holds_keys_and_reasons_and_the_kept_file_the_view_rows_of_kept_examples(hand_db, tmp_path):
    """The ordered plan (its window and sort) carries no spans: only keys, response_chars and reasons; the view's
    rows, spans included, are written unsorted for the kept examples only."""
    from mementos.foundation import storage
    from mementos.warehouse.export.plan import select_outliers, write_plan

    export(hand_db, "memento", tmp_path / "built", splits=ONE_SPLIT)  # builds the view
    with storage.connect(hand_db, read_only=True) as con:
        select_outliers(con, [])
        write_plan(con, "export_memento", False, {"include_flagged": False, "domain": None}, tmp_path)
        plan = con.execute("SELECT * FROM __export_plan").fetchall()
        plan_columns = [d[0] for d in con.description]
        kept = con.execute("SELECT trace_id, len(blocks), reason FROM __export_kept ORDER BY trace_id").fetchall()
    assert plan_columns == ["trace_id", "dataset", "source_row", "response_chars", "outlier_reason", "reason"]
    assert [(r[0], r[-1]) for r in plan] == [("hand:0", None), ("hand:1", None), ("hand:2", "duplicate"),
                                             ("hand:3", "flagged"), ("hand:4", None), ("hand:5", None)]
    assert kept == [("hand:0", 2, None), ("hand:1", 1, None), ("hand:4", 1, None), ("hand:5", 1, None)]


@pytest.mark.parametrize("kind", ["memento", "summarize"])
def test_the_order_of_the_kept_file_does_not_change_the_bytes(sample_db_with_tokens, reference_export, tmp_path,
                                                               monkeypatch, kind):
    """The kept examples' rows are written in whatever order DuckDB gives them; each chunk sorts its own, so
    the reverse order gives the same files."""
    import mementos.warehouse.export.plan as plan_module

    as_is = files_of(reference_export(kind))  # made before the changes below, if not made yet
    kept_sql = plan_module.kept_sql
    monkeypatch.setattr(plan_module, "kept_sql",
                        lambda view, per_block: kept_sql(view, per_block) + " ORDER BY v.source_row DESC")
    monkeypatch.setattr(plan_module, "CHUNK_CHARS", 400_000)  # many chunks, each reading its rows
    export(sample_db_with_tokens, kind, tmp_path / "reversed", splits=NINE_TO_ONE)
    assert files_of(tmp_path / "reversed") == as_is


def test_slices_cut_at_trace_boundaries():
    """Plan rows of one trace (summarize: one per block) stay in one slice; a slice closes once it holds
    slice_chars response chars."""
    import numpy as np

    from mementos.warehouse.export.run import _slices

    at = np.array([0, 0, 0, 1, 2, 2, 3])  # each plan row's trace
    chars = np.array([5, 5, 5, 3, 4, 4, 9])  # each row's trace's response chars
    assert _slices(chars, at, 7) == [(0, 4), (4, 7)]


def test_empty_examples_are_left_out_and_counted(tmp_path):
    rows = [row(memento([("b", "s")]), problem="   "),            # no problem
            row("", problem="Empty response."),                    # flagged: empty_response
            row("<think>raw only</think>42", problem="Raw."),      # unsegmented: nothing to compress
            row(memento([("b2", "s2")]), problem="Fine.")]
    db = tmp_path / "w.duckdb"
    run_ingest(str(write_jsonl(tmp_path / "e.jsonl", rows)), db, name="e", workers=0, progress=False)
    plain = export(db, "plain", tmp_path / "p", splits=ONE_SPLIT, include_flagged=True)
    assert [r["trace_id"] for r in read_jsonl(tmp_path / "p" / "train.jsonl")] == ["e:3"]
    assert plain.left_out["empty"] == 3
    memento_kind = export(db, "memento", tmp_path / "m", splits=ONE_SPLIT, include_flagged=True)
    # the raw chain of thought is a response: the memento kind keeps it as it is
    assert [r["trace_id"] for r in read_jsonl(tmp_path / "m" / "train.jsonl")] == ["e:2", "e:3"]
    assert memento_kind.left_out["empty"] == 2


@pytest.fixture(scope="module")
def sample_db_with_tokens(tmp_path_factory):
    from mementos.sample import write_sample

    tmp = tmp_path_factory.mktemp("export_sample_tokens")
    write_sample(tmp / "sample", 150, seed=5)
    db = tmp / "w.duckdb"
    run_ingest(str(tmp / "sample"), db, name="sample", workers=0, progress=False)
    return db


@pytest.mark.parametrize("kind,at_least", [("memento", 140), ("compressed", 140), ("plain", 140),
                                           ("summarize", 500)])
def test_n_tokens_from_stored_counts_is_the_count_of_the_rendered_example(sample_db_with_tokens, tmp_path, kind,
                                                                          at_least):
    """With ingest's counts, the export tokenizes only what they do not cover (the problem or instruction,
    the markup and separators, each segment's last words) and adds the stored counts where the cuts are
    piece boundaries (warehouse/export_tokens.py _count_plan): every record's n_tokens is still exact."""
    export(sample_db_with_tokens, kind, tmp_path / "s", splits=ONE_SPLIT)
    records = read_jsonl(tmp_path / "s" / "train.jsonl")
    assert len(records) > at_least
    assert [r["n_tokens"] for r in records] == [sum(count_tokens([m["content"] for m in r["messages"]]))
                                                for r in records]


@pytest.mark.parametrize("kind", ["memento", "compressed", "plain", "summarize"])
def test_n_tokens_is_the_count_of_the_whole_rendered_example_and_max_tokens_keeps_exactly_those(sample_db, tmp_path,
                                                                                                  kind):
    """#15: n_tokens counts the problem (or instruction and block), the markup and the separators, not a lower
    bound from the segments' stored counts; --max-tokens N keeps exactly the examples with n_tokens <= N.
    sample_db was ingested with --no-tokens: the counts are made at export (--max-tokens was an error there)."""
    every = export(sample_db, kind, tmp_path / "all", splits=ONE_SPLIT)
    records = read_jsonl(tmp_path / "all" / "train.jsonl")
    counted = [sum(count_tokens([m["content"] for m in r["messages"]])) for r in records]
    assert [r["n_tokens"] for r in records] == counted
    limit = sorted(counted)[len(counted) // 2]  # the median: about half are left out
    some = export(sample_db, kind, tmp_path / "some", splits=ONE_SPLIT, max_tokens=limit)
    kept = read_jsonl(tmp_path / "some" / "train.jsonl")
    assert kept == [r for r in records if r["n_tokens"] <= limit]
    assert some.left_out["too_long"] == sum(n > limit for n in counted)
    assert {k: v for k, v in some.left_out.items() if k != "too_long"} == {
        k: v for k, v in every.left_out.items() if k != "too_long"}


# The split files of each kind of the 150-trace sample (seed 5, with ingest's token counts), as the export wrote
# them before it was made faster (chunks read and written in threads, the tokens' glue found by one match):
# a change of speed must not change a byte. A deliberate change of the records (LAYOUT_VERSION, a view's
# version, the sample generator) changes them: write the new hashes here, saying why in the commit.
PINNED_SHA256 = {
    "memento": ("8d7c0116ebbe99e7a0d062e24313ca9455f03ec6f39c47bfe2b789c6ae61e5c9",
                "a5b3fda11f1f91e2950c48db167f21cfdf9165dafe39b05cd4abb6da6e8ecffb"),
    "compressed": ("3c81884c927164114ec6fc460cfb53169759d88498ec4ecb5ad3ccfc9107c264",
                   "993e13dc5cf24e593f6e6e9bd7a630dda5828b394690344248b96018d9f889d1"),
    "summarize": ("d6984315f900396ed74994a3ca96fae3655056e28465fa2344965bf9ed1e7c2e",
                  "6a134ed3dfa545e73224f7a7c1de1896b2fe9eb844f6cbb47ac1b8c7686ede26"),
    "plain": ("a86cef14465435336c6ba8ee3274491eaa2d08c64659c3a1b4b4d2485690e9ff",
              "42063bff434f2554fc5c41a4d23159c49f635038c0610d62a91113b199f97447"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_writes_the_pinned_bytes(sample_db_with_tokens, tmp_path, kind):
    """train.jsonl and test.jsonl of every kind are byte for byte the pinned files (PINNED_SHA256)."""
    export(sample_db_with_tokens, kind, tmp_path / kind, splits={"train": 0.9, "test": 0.1})
    assert tuple(hashlib.sha256((tmp_path / kind / name).read_bytes()).hexdigest()
                 for name in ("train.jsonl", "test.jsonl")) == PINNED_SHA256[kind]
