"""The OpenMementos tutorial's statistic beside ours, and difficulties listed in numeric order.

The tutorial takes, per trace, total memento size / total block size (in chars and in words) and
reports the median of those per-trace ratios per domain; compression_breakdown's median_ratio_chars
is the median over blocks, a different number. Golden numbers by hand on a corpus of five traces whose
texts are single-letter words: n words are 2n - 1 chars.
"""

from __future__ import annotations

import pytest

from conftest import memento, row, write_jsonl
from mementos.ingest.pipeline import run_ingest
from mementos.foundation import storage
from mementos.warehouse.engine import build

APPROX = dict(rel=1e-9, abs=1e-12)


def words(n: int) -> str:
    return " ".join(["x"] * n)


# (domain, difficulty, [(block words, memento words), ...])
TRACES = [
    ("math", "10", [(10, 2), (30, 3)]),   # words 5/40, chars (3 + 5)/(19 + 59) = 8/78
    ("math", "3", [(20, 5)]),             # words 5/20, chars 9/39
    ("math", "hard", [(4, 1), (6, 3)]),   # words 4/10, chars (1 + 5)/(7 + 11) = 6/18
    ("code", "2", [(8, 2)]),              # words 2/8, chars 3/15
    ("code", "easy", [(10, 10)]),         # words 10/10, chars 19/19
]


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    d = tmp_path_factory.mktemp("tutorial")
    rows = [row(memento([(words(b), words(m)) for b, m in pairs]), problem=f"p{i}", domain=domain,
                difficulty=difficulty) for i, (domain, difficulty, pairs) in enumerate(TRACES)]
    db = d / "w.duckdb"
    run_ingest(str(write_jsonl(d / "t.jsonl", rows)), db, name="t", workers=0, progress=False, with_tokens=False)
    report = build(db)
    assert report.ok, report.format()
    with storage.connect(db) as c:
        yield c


def test_trace_compression_has_the_per_trace_word_ratio(con):
    got = con.execute("SELECT trace_id, block_words, memento_words, ratio_words FROM trace_compression "
                      "ORDER BY trace_id").fetchall()
    assert got == [("t:0", 40, 5, 5 / 40), ("t:1", 20, 5, 5 / 20), ("t:2", 10, 4, 4 / 10), ("t:3", 8, 2, 2 / 8),
                   ("t:4", 10, 10, 1.0)]


def test_the_tutorials_median_of_per_trace_ratios_per_domain(con):
    got = {r[0]: r[1:] for r in con.execute(
        "SELECT domain, median_trace_ratio_chars, median_trace_ratio_words, median_ratio_chars "
        "FROM domain_compression").fetchall()}
    # math: per-trace chars 8/78, 9/39, 6/18 -> 9/39; words 1/8, 1/4, 2/5 -> 1/4. Over blocks instead:
    # 3/19, 5/59, 9/39, 1/7, 5/11 -> 3/19, a different number
    assert got["math"] == (pytest.approx(9 / 39, **APPROX), 1 / 4, pytest.approx(3 / 19, **APPROX))
    # code: chars 3/15 and 19/19 -> 3/5; words 1/4 and 1 -> 5/8
    assert got["code"][:2] == (pytest.approx(3 / 5, **APPROX), 5 / 8)
    # all five: chars 8/78, 3/15, 9/39, 6/18, 1 -> 9/39; words 1/8, 1/4, 1/4, 2/5, 1 -> 1/4
    assert got["all"][:2] == (pytest.approx(9 / 39, **APPROX), 1 / 4)


def test_difficulties_are_listed_numbers_first_in_numeric_order(con):
    got = con.execute("SELECT difficulty, difficulty_order, is_total FROM compression_by_difficulty").fetchall()
    assert got == [("2", 1, False), ("3", 2, False), ("10", 3, False), ("easy", 4, False), ("hard", 5, False),
                   ("all", 1, True)]
    domains = con.execute("SELECT value, value_order FROM compression_breakdown WHERE dimension = 'domain' "
                          "ORDER BY value_order").fetchall()
    assert domains == [("code", 1), ("math", 2)]
