"""Tests for mementos_sample, the synthetic OpenMementos-style corpus.

Everything is read back from the written Parquet files with pyarrow, and the
responses are split with plain str.split on the markup, so these tests do not
depend on the ingest parser. The statistics targets come from the published
OpenMementos dataset card.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mementos.sample import (
    DEFECT_KINDS,
    EVERY_KIND_MIN_TRACES,
    FULL_DEFECT_KINDS,
    SampleSummary,
    write_sample,
)
from mementos.foundation import storage
from mementos.ingest.pipeline import run_ingest
from mementos.warehouse.card import median_ratio_chars
from mementos.warehouse.engine import build

N_TRACES = 3000
SEED = 11
SHARD_ROWS = 1000

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
BS, BE, SS, SE = "<|block_start|>", "<|block_end|>", "<|summary_start|>", "<|summary_end|>"
MARKUP = (THINK_OPEN, THINK_CLOSE, BS, BE, SS, SE)

# the hub layout's configs, as `datasets` reads them from the card's front matter
EXPECTED_CONFIGS = [
    {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}], "default": True},
    {"config_name": "full", "data_files": [{"split": "train", "path": "full/train-*"}]},
]
DEFAULT_COLUMNS = [
    ("problem", pa.string()),
    ("response", pa.string()),
    ("domain", pa.string()),
    ("source", pa.string()),
    ("difficulty", pa.int64()),
]
FULL_COLUMNS = DEFAULT_COLUMNS + [
    ("sentences", pa.list_(pa.string())),
    ("blocks", pa.list_(pa.list_(pa.int64()))),
    ("block_summaries", pa.list_(pa.string())),
]
SOURCES = {
    "math": {"AIME", "MATH", "NuminaMath", "OpenMathReasoning"},
    "science": {"GPQA", "SciQ", "MMLU-Pro"},
    "code": {"LiveCodeBench", "CodeContests", "APPS"},
}


# --------------------------------------------------------------------------
# helpers

def read_rows(out: Path, config_dir: str) -> list[dict]:
    files = sorted((out / config_dir).glob("train-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()


def file_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def split_response(response: str) -> tuple[list[str], list[str], str]:
    """Blocks, summaries and answer of a well-formed response; AssertionError otherwise.

    Strict on purpose: the response must be exactly
    <think>\\n (<|block_start|>\\nB\\n<|block_end|>\\n<|summary_start|>\\nS\\n<|summary_end|>\\n)+ </think>\\n\\nA
    with non-empty B, S, A and no markup inside them.
    """
    assert response.count(THINK_CLOSE) == 1
    head, answer = response.split(THINK_CLOSE + "\n\n")
    assert head.startswith(THINK_OPEN + "\n")
    chunks = head[len(THINK_OPEN) + 1:].split(SE + "\n")
    assert chunks[-1] == "" and len(chunks) >= 2
    blocks, summaries = [], []
    for chunk in chunks[:-1]:
        assert chunk.startswith(BS + "\n")
        block, summary = chunk[len(BS) + 1:].split(f"\n{BE}\n{SS}\n")
        assert summary.endswith("\n")
        blocks.append(block)
        summaries.append(summary[:-1])
    for text in blocks + summaries + [answer]:
        assert text.strip() and not any(m in text for m in MARKUP)
    for text in blocks + summaries:
        assert "\n" not in text and text == text.strip()
    return blocks, summaries, answer


def try_split(response: str) -> tuple[list[str], list[str], str] | None:
    try:
        return split_response(response)
    except (AssertionError, ValueError):
        return None


def is_well_formed(response: str) -> bool:
    return try_split(response) is not None


def full_defect(row: dict) -> str | None:
    """Which FULL_DEFECT_KINDS entry the full-config columns show, or None when consistent."""
    blocks, n = row["blocks"], len(row["sentences"])
    if len(row["block_summaries"]) != len(blocks):
        return "summary_count_mismatch"
    if any(not (0 <= s <= e < n) for s, e in blocks):
        return "block_out_of_bounds"
    if any(b[0] < a[0] for a, b in zip(blocks, blocks[1:])):
        return "blocks_out_of_order"
    if any(b[0] <= a[1] for a, b in zip(blocks, blocks[1:])):
        return "overlapping_blocks"
    return None


def _after_think(r: str) -> str:
    return r.split(THINK_CLOSE, 1)[1] if THINK_CLOSE in r else ""


def _counts(r: str) -> tuple[int, int, int, int]:
    return r.count(BS), r.count(BE), r.count(SS), r.count(SE)


# One independent predicate per defect kind, on the response alone.
DEFECT_CHECKS = {
    "empty_response": lambda r: r == "",
    "no_think": lambda r: THINK_OPEN not in r and r.startswith(BS + "\n") and THINK_CLOSE in r,
    "unclosed_think": lambda r: r.startswith(THINK_OPEN + "\n") and THINK_CLOSE not in r and r.endswith(SE + "\n"),
    "no_blocks": lambda r: (r.startswith(THINK_OPEN + "\n") and THINK_CLOSE + "\n\n" in r
                            and not any(m in r for m in (BS, BE, SS, SE))),
    "unclosed_block": lambda r: (lambda c: c[0] == c[1] + 1 == c[2] == c[3])(_counts(r))
                                and re.search(r"[^>]\n<\|summary_start\|>", r) is not None,
    "truncated_stream": lambda r: (THINK_CLOSE not in r and not r.endswith("\n")
                                   and r.rfind(BS) > max(r.rfind(BE), r.rfind(SE))),
    "summary_without_block": lambda r: (lambda c: c[0] + 1 == c[1] + 1 == c[2] == c[3])(_counts(r)),
    "nested_token": lambda r: (THINK_CLOSE in r
                               and (lambda c: c[0] == c[1] + 1 and c[1] == c[2] == c[3])(_counts(r))),
    "empty_block": lambda r: f"{BS}\n\n{BE}" in r,
    "empty_summary": lambda r: f"{SS}\n\n{SE}" in r,
    "text_outside_pairs": lambda r: (len(set(_counts(r))) == 1
                                     and re.search(re.escape(SE) + r"\n[^<]", r.split(THINK_CLOSE)[0]) is not None),
    "markup_in_answer": lambda r: any(m in _after_think(r) for m in MARKUP),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One 3,000-trace sample shared by the statistics tests (~3 s to write)."""
    out = tmp_path_factory.mktemp("corpus") / "sample"
    summary = write_sample(out, N_TRACES, seed=SEED, shard_rows=SHARD_ROWS)
    default, full = read_rows(out, "data"), read_rows(out, "full")
    parsed = {i: try_split(row["response"]) for i, row in enumerate(default)}  # None: malformed
    clean = [i for i in range(N_TRACES) if i not in summary.broken_rows]
    return {"out": out, "summary": summary, "default": default, "full": full, "clean": clean, "parsed": parsed}


@pytest.fixture(scope="module")
def per_domain(corpus):
    """Per-domain lists of blocks per trace, block chars, summary chars and ratios (clean rows)."""
    stats = {d: {"n_blocks": [], "block_chars": [], "summary_chars": [], "ratio": []} for d in SOURCES}
    for i in corpus["clean"]:
        blocks, summaries, _ = corpus["parsed"][i]
        domain = corpus["default"][i]["domain"]
        if domain is None:
            continue
        s = stats[domain]
        s["n_blocks"].append(len(blocks))
        for b, m in zip(blocks, summaries):
            s["block_chars"].append(len(b))
            s["summary_chars"].append(len(m))
            s["ratio"].append(len(m) / len(b))
    return stats


# --------------------------------------------------------------------------
# determinism

def test_same_seed_writes_byte_identical_files(tmp_path):
    a = write_sample(tmp_path / "a", 150, seed=3, shard_rows=60)
    b = write_sample(tmp_path / "b", 150, seed=3, shard_rows=60)
    files_a, files_b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert len(files_a) == 7  # README + 3 data + 3 full shards
    assert files_a == files_b
    assert a.broken_rows == b.broken_rows and a.full_broken_rows == b.full_broken_rows


def test_same_bytes_in_a_fresh_process_with_another_hash_seed(tmp_path):
    # Guards against set/hash-order or pool-building differences between processes.
    write_sample(tmp_path / "here", 60, seed=9, shard_rows=25)
    root = Path(__file__).resolve().parents[1]
    code = "import sys; from mementos.sample import write_sample; write_sample(sys.argv[1], 60, seed=9, shard_rows=25)"
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], check=True, env=env)
    assert file_bytes(tmp_path / "here") == file_bytes(tmp_path / "there")


def test_different_seed_writes_different_rows(tmp_path):
    write_sample(tmp_path / "a", 150, seed=3, shard_rows=60)
    write_sample(tmp_path / "b", 150, seed=4, shard_rows=60)
    ra, rb = read_rows(tmp_path / "a", "data"), read_rows(tmp_path / "b", "data")
    assert sum(x["response"] == y["response"] for x, y in zip(ra, rb)) == 0
    fa, fb = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert all(fa[name] != fb[name] for name in fa)


def test_rows_do_not_depend_on_shard_rows(tmp_path):
    write_sample(tmp_path / "a", 150, seed=3, shard_rows=60)
    write_sample(tmp_path / "b", 150, seed=3, shard_rows=150)
    assert len(list((tmp_path / "b" / "full").iterdir())) == 1
    assert read_rows(tmp_path / "a", "full") == read_rows(tmp_path / "b", "full")


def test_parquet_metadata_has_only_the_arrow_schema(corpus):
    # No timestamps or paths anywhere: that is what makes the bytes reproducible.
    meta = pq.ParquetFile(corpus["out"] / "full" / "train-00000-of-00003.parquet").metadata
    assert set(meta.metadata) == {b"ARROW:schema"}
    assert meta.row_group(0).column(1).compression == "ZSTD"


# --------------------------------------------------------------------------
# layout

def test_readme_front_matter_lists_default_and_full_configs(corpus):
    readme = (corpus["out"] / "README.md").read_text(encoding="utf-8")
    empty, front_matter, body = readme.split("---\n", 2)
    assert empty == "" and yaml.safe_load(front_matter) == {"license": "mit", "configs": EXPECTED_CONFIGS}
    assert "synthetic" in body and f"seed **{SEED}**" in body and "3,000 traces" in body


def test_shard_file_names_and_row_counts(corpus):
    out = corpus["out"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", "full"]
    want = [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    for config_dir in ("data", "full"):
        assert sorted(p.name for p in (out / config_dir).iterdir()) == want
        assert [pq.ParquetFile(out / config_dir / n).metadata.num_rows for n in want] == [1000, 1000, 1000]
    # Nothing left beside out_dir: the temp dir was renamed, not copied.
    assert [p.name for p in out.parent.iterdir()] == ["sample"]


def test_summary_counts_files_and_bytes(corpus):
    s, out = corpus["summary"], corpus["out"]
    assert isinstance(s, SampleSummary)
    assert (s.traces, s.seed, s.shard_rows, s.files) == (N_TRACES, SEED, SHARD_ROWS, 7)
    assert s.paths[0] == "README.md" and len(s.paths) == 7
    assert s.bytes == sum((out / p).stat().st_size for p in s.paths)
    assert s.out_dir == out.absolute()


def test_schemas_are_exact(corpus):
    out = corpus["out"]
    for config_dir, columns in (("data", DEFAULT_COLUMNS), ("full", FULL_COLUMNS)):
        schema = pq.read_schema(out / config_dir / "train-00000-of-00003.parquet")
        assert [(f.name, f.type) for f in schema] == columns


def test_default_and_full_hold_the_same_rows(corpus):
    keys = [name for name, _ in DEFAULT_COLUMNS]
    assert len(corpus["default"]) == len(corpus["full"]) == N_TRACES
    for d, f in zip(corpus["default"], corpus["full"]):
        assert d == {k: f[k] for k in keys}


def test_datasets_streams_both_configs(corpus, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    # datasets reads the variables at import; patch the constants in case it was imported already.
    for mod, name in ((datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE")):
        if hasattr(mod, name):
            monkeypatch.setattr(mod, name, True)
    out = str(corpus["out"])
    full = datasets.load_dataset(out, "full", split="train", streaming=True)
    n = 0
    for n, row in enumerate(full, start=1):
        if n == 1:
            assert row == corpus["full"][0]
    assert n == N_TRACES
    default = datasets.load_dataset(out, split="train", streaming=True)  # `default: true`
    assert next(iter(default)) == corpus["default"][0]


# --------------------------------------------------------------------------
# response format

def test_clean_responses_match_the_markup_exactly(corpus):
    for i in corpus["clean"]:
        blocks, summaries, answer = corpus["parsed"][i]
        rebuilt = "<think>\n" + "".join(
            f"<|block_start|>\n{b}\n<|block_end|>\n<|summary_start|>\n{s}\n<|summary_end|>\n"
            for b, s in zip(blocks, summaries)) + "</think>\n\n" + answer
        assert rebuilt == corpus["default"][i]["response"]
        assert 50 <= len(answer) <= 600


def test_full_blocks_join_to_the_response_block_text(corpus):
    full, summary = corpus["full"], corpus["summary"]
    checked = 0
    for i in corpus["clean"]:
        if i in summary.full_broken_rows:
            continue
        row = full[i]
        blocks, summaries, _ = corpus["parsed"][i]
        sentences = row["sentences"]
        assert [" ".join(sentences[s:e + 1]) for s, e in row["blocks"]] == blocks
        assert row["block_summaries"] == summaries
        # Contiguous ranges that cover every sentence once, in order.
        assert row["blocks"][0][0] == 0 and row["blocks"][-1][1] == len(sentences) - 1
        assert all(b[0] == a[1] + 1 for a, b in zip(row["blocks"], row["blocks"][1:]))
        assert all(s and "\n" not in s and s == s.strip() for s in sentences)
        checked += 1
    assert checked >= N_TRACES - 45


def test_answers_look_like_their_domain(corpus):
    for i in corpus["clean"][:300]:
        domain, answer = corpus["default"][i]["domain"], corpus["parsed"][i][2]
        if domain == "code":
            assert answer.startswith("```python\n")
        elif domain in ("math", "science"):
            assert answer.startswith("**Answer:**")


# --------------------------------------------------------------------------
# statistics (OpenMementos card)

def test_domain_mix(corpus):
    counts = Counter(r["domain"] for r in corpus["default"])
    for domain, share in (("math", 0.54), ("science", 0.27), ("code", 0.19)):
        assert abs(counts[domain] / N_TRACES - share) < 0.025, (domain, counts)
    assert 1 <= counts[None] <= 10  # ~0.1% null domains


def test_median_blocks_per_trace(per_domain):
    for domain, target in (("math", 9), ("science", 7), ("code", 9)):
        n = per_domain[domain]["n_blocks"]
        assert abs(statistics.median(n) - target) <= 0.5, domain
        assert min(n) >= 2 and max(n) <= 30
    every = [x for d in per_domain.values() for x in d["n_blocks"]]
    assert min(every) == 2 and max(every) == 30  # the clamp is reached: a real spread


def test_median_block_chars(per_domain):
    med = {d: statistics.median(per_domain[d]["block_chars"]) for d in per_domain}
    assert abs(med["math"] - 3800) < 3800 * 0.05
    assert abs(med["science"] - 2300) < 2300 * 0.05
    assert abs(med["code"] - 3000) < 3000 * 0.05
    assert med["science"] < med["code"] < med["math"]


def test_block_chars_have_a_lognormal_spread(per_domain):
    chars = sorted(per_domain["math"]["block_chars"])
    q = lambda p: chars[int(p * (len(chars) - 1))]
    up, down = q(0.9) / q(0.5), q(0.5) / q(0.1)
    assert 1.4 < up < 2.2 and 1.4 < down < 2.2  # wide, and symmetric in log space
    assert abs(up / down - 1) < 0.2


def test_median_summary_chars(per_domain):
    every = [x for d in per_domain.values() for x in d["summary_chars"]]
    assert 500 <= statistics.median(every) <= 600


def test_median_summary_to_block_ratio(per_domain):
    for domain, target in median_ratio_chars().items():  # the card's: math 0.16, code 0.18, science 0.23
        assert abs(statistics.median(per_domain[domain]["ratio"]) - target) <= 0.02, domain


def test_cl100k_chars_per_token(corpus):
    """The card: ~3.3 chars/token in blocks, ~2.9 in mementos, ~1,150 and ~194 tokens each."""
    from bpe_openai import get_encoding

    enc = get_encoding("cl100k_base")
    pairs = [(b, s) for i in corpus["clean"] for b, s in zip(*corpus["parsed"][i][:2])]
    picked = random.Random(0).sample(pairs, 300)
    block_tokens = [len(enc.encode_ordinary(b)) for b, _ in picked]
    summary_tokens = [len(enc.encode_ordinary(s)) for _, s in picked]
    block_cpt = sum(len(b) for b, _ in picked) / sum(block_tokens)
    summary_cpt = sum(len(s) for _, s in picked) / sum(summary_tokens)
    assert 3.0 <= block_cpt <= 3.6, block_cpt
    assert 2.6 <= summary_cpt <= 3.2, summary_cpt
    assert 900 <= statistics.mean(block_tokens) <= 1400
    assert 150 <= statistics.mean(summary_tokens) <= 260
    assert 4.5 <= sum(block_tokens) / sum(summary_tokens) <= 7.0  # card: ~6x


def test_sources_and_difficulty(corpus):
    seen = {d: set() for d in SOURCES}
    difficulties = Counter()
    for row in corpus["default"]:
        if row["domain"] is not None:
            assert row["source"] in SOURCES[row["domain"]]
            seen[row["domain"]].add(row["source"])
        difficulties[row["difficulty"]] += 1
    assert seen == SOURCES
    assert set(difficulties) - {None} <= set(range(1, 11))
    assert len(set(difficulties) - {None}) == 10
    assert 5 <= difficulties[None] <= 0.03 * N_TRACES  # a few nulls


def test_a_few_exact_duplicates(corpus):
    seen, dups = set(), 0
    for row in corpus["default"]:
        key = (row["problem"], row["response"])
        dups += key in seen
        seen.add(key)
    assert dups == corpus["summary"].duplicates
    assert 2 <= dups <= 15  # ~0.2% of 3,000


# --------------------------------------------------------------------------
# defects

def test_about_one_percent_broken_with_every_kind(corpus):
    s = corpus["summary"]
    assert s.broken == len(s.broken_rows) == round(N_TRACES * 0.01)
    assert tuple(s.broken_by_kind) == DEFECT_KINDS
    assert all(n >= 2 for n in s.broken_by_kind.values())  # 30 rows over 12 kinds, spread evenly
    assert sum(s.broken_by_kind.values()) == s.broken
    assert Counter(s.broken_rows.values()) == s.broken_by_kind


def test_exactly_the_broken_rows_are_malformed(corpus):
    broken = corpus["summary"].broken_rows
    malformed = {i for i, parsed in corpus["parsed"].items() if parsed is None}
    assert malformed == set(broken)


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_broken_rows_show_their_defect(corpus, kind):
    rows = [i for i, k in corpus["summary"].broken_rows.items() if k == kind]
    assert rows
    for i in rows:
        response = corpus["default"][i]["response"]
        assert DEFECT_CHECKS[kind](response), (kind, response[-300:])
        assert corpus["full"][i]["response"] == response
        others = [k for k, check in DEFECT_CHECKS.items() if k != kind and check(response)]
        assert others == [], (kind, others)


def test_full_only_defects_leave_the_response_valid(corpus):
    s, full = corpus["summary"], corpus["full"]
    assert tuple(s.full_broken_by_kind) == FULL_DEFECT_KINDS
    assert all(n >= 1 for n in s.full_broken_by_kind.values())
    assert len(s.full_broken_rows) == round(N_TRACES * 0.003)
    assert not set(s.full_broken_rows) & set(s.broken_rows)
    for i, row in enumerate(full):
        if i in s.broken_rows:
            continue
        assert full_defect(row) == s.full_broken_rows.get(i), i
        if i in s.full_broken_rows:
            assert is_well_formed(row["response"])


def test_every_kind_is_forced_from_200_traces(tmp_path):
    s = write_sample(tmp_path / "s", EVERY_KIND_MIN_TRACES, seed=1, shard_rows=100)
    assert s.broken_by_kind == dict.fromkeys(DEFECT_KINDS, 1)
    assert s.full_broken_by_kind == dict.fromkeys(FULL_DEFECT_KINDS, 1)
    rows = read_rows(tmp_path / "s", "data")
    for i, kind in s.broken_rows.items():
        assert DEFECT_CHECKS[kind](rows[i]["response"])


def test_every_kind_can_be_turned_off(tmp_path):
    s = write_sample(tmp_path / "s", EVERY_KIND_MIN_TRACES, seed=1, every_kind=False)
    assert s.broken == 2 and len(s.full_broken_rows) == 1
    small = write_sample(tmp_path / "t", EVERY_KIND_MIN_TRACES - 1, seed=1)
    assert small.broken == 2  # below the threshold the plain 1% applies


# --------------------------------------------------------------------------
# writing into an existing directory

def test_replaces_only_a_sample_of_the_same_parameters(tmp_path):
    out = tmp_path / "s"
    write_sample(out, 40, seed=2, shard_rows=20)
    before = file_bytes(out)
    write_sample(out, 40, seed=2, shard_rows=20)  # same parameters: replaced, same bytes
    assert file_bytes(out) == before
    with pytest.raises(FileExistsError):
        write_sample(out, 41, seed=2, shard_rows=20)
    assert file_bytes(out) == before  # the refused call changed nothing
    write_sample(out, 41, seed=2, shard_rows=20, overwrite=True)
    assert len(read_rows(out, "data")) == 41
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temp or old dirs left


def test_never_replaces_a_foreign_directory(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError):
            write_sample(out, 10, overwrite=overwrite)
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_sample(empty, 10).traces == 10  # an empty directory is fair game


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_sample(tmp_path / "a", 0)
    with pytest.raises(ValueError):
        write_sample(tmp_path / "b", 10, shard_rows=0)
    assert list(tmp_path.iterdir()) == []


def test_progress_goes_to_stderr(tmp_path, capsys):
    write_sample(tmp_path / "s", 30, shard_rows=10, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "30/30 traces, shard 3/3" in captured.err


# --------------------------------------------------------------------------
# scale (make test-slow)

_MEASURE = """
import json, resource, sys, time
from mementos.sample import write_sample
t = time.perf_counter()
s = write_sample(sys.argv[1], int(sys.argv[2]), seed=5)
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": u.ru_utime + u.ru_stime,
                  "bytes": s.bytes, "maxrss_kb": u.ru_maxrss}))
"""


def _measure(out: Path, traces: int) -> dict:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(out), str(traces)],
                          check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout)


@pytest.mark.slow
def test_20k_traces_memory_stays_flat(tmp_path):
    # Speed is measured in bench/, never asserted in a test.
    small = _measure(tmp_path / "small", 2_000)
    big = _measure(tmp_path / "big", 20_000)
    # Ten times the traces, about the same peak memory: only a batch is ever held.
    assert big["maxrss_kb"] < small["maxrss_kb"] + 150_000


# ---------------------------------------------------------------------------
# The card's median memento/block char ratios, reproduced end to end (sample -> ingest -> build ->
# domain_compression) within 0.03 of each

CARD_MEDIAN_RATIO_CHARS = median_ratio_chars()  # math 0.16, code 0.18, science 0.23
CARD_TRACES = 2000


@pytest.fixture(scope="module")
def card_sample_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("card")
    write_sample(tmp / "sample", CARD_TRACES, seed=5)
    db = tmp / "card.duckdb"
    run_ingest(str(tmp / "sample"), db, config="default", name="sample", with_tokens=False, workers=0,
               progress=False)
    report = build(db, select=["+domain_compression"])  # what the test reads, not every model
    assert report.ok, report.format()
    return db


def test_card_ratio_medians_within_003(card_sample_db):
    with storage.connect(card_sample_db) as con:
        got = dict(con.execute("SELECT domain, median_ratio_chars FROM domain_compression").fetchall())
        [(flagged, analysed)] = con.execute(
            "SELECT flagged_traces, traces FROM domain_compression WHERE domain = 'all'").fetchall()
        [(unsegmented,)] = con.execute("SELECT count(*) FROM traces WHERE status = 'unsegmented'").fetchall()
    for domain, target in CARD_MEDIAN_RATIO_CHARS.items():
        assert got[domain] == pytest.approx(target, abs=0.03), f"{domain}: {got[domain]:.3f} vs card {target}"
    assert analysed + flagged + unsegmented == CARD_TRACES and 0 < flagged + unsegmented < CARD_TRACES * 0.05
