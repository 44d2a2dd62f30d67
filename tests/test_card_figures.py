"""The OpenMementos card's median memento/block char ratios, reproduced from a generated sample.

Card: math 0.16, code 0.18, science 0.23. The sample generator (mementos_sample)
aims at them; this test checks that the warehouse, end to end (sample -> ingest
-> build -> domain_compression), lands within 0.03 of each.
"""

from __future__ import annotations

import duckdb
import pytest

from mementos import sample
from mementos.foundation import storage
from mementos.ingest.pipeline import run_ingest
from mementos.warehouse import card
from mementos.warehouse.engine import build

CARD_MEDIAN_RATIO_CHARS = card.median_ratio_chars()  # math 0.16, code 0.18, science 0.23
TRACES = 2000


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("card")
    sample.write_sample(tmp / "sample", TRACES, seed=5)
    db = tmp / "card.duckdb"
    run_ingest(str(tmp / "sample"), db, config="default", name="sample", with_tokens=False, workers=0,
               progress=False)
    report = build(db)
    assert report.ok, report.format()
    return db


def test_card_ratio_medians_within_003(sample_db):
    with storage.connect(sample_db) as con:
        got = dict(con.execute("SELECT domain, median_ratio_chars FROM domain_compression").fetchall())
        [(flagged, analysed)] = con.execute(
            "SELECT flagged_traces, traces FROM domain_compression WHERE domain = 'all'").fetchall()
    for domain, card in CARD_MEDIAN_RATIO_CHARS.items():
        assert got[domain] == pytest.approx(card, abs=0.03), f"{domain}: {got[domain]:.3f} vs card {card}"
    assert analysed + flagged == TRACES and 0 < flagged < TRACES * 0.05
