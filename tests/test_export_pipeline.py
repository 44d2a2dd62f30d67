"""warehouse/export/pipeline.py: the export's read-ahead and in-order writer threads keep the order and
hand their errors to the caller."""

from __future__ import annotations

import threading

import pytest

from mementos.warehouse.export.pipeline import InOrder, read_ahead


def test_read_ahead_yields_every_item_in_order():
    assert list(read_ahead(iter(range(50)))) == list(range(50))


def test_read_ahead_raises_the_producers_error_at_the_item_it_stopped_at():
    def items():
        yield "chunk 0"
        raise ValueError("chunk 1 could not be read")

    got = []
    with pytest.raises(ValueError, match="chunk 1 could not be read"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == ["chunk 0"]


def test_read_ahead_closed_early_stops_its_thread():
    made = []

    def items():
        for i in range(1000):
            made.append(i)
            yield i

    chunks = read_ahead(items())
    assert next(chunks) == 0
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name == "export-read-ahead"]
    assert len(made) <= 3  # the item handed over, one waiting, one being made


def test_in_order_runs_the_calls_in_the_order_given():
    done = []
    out = InOrder()
    for i in range(100):
        out.submit(lambda i=i: done.append(i))
    out.close()
    assert done == list(range(100))


def test_in_order_raises_the_first_error_and_runs_nothing_after_it():
    done = []
    out = InOrder()
    with pytest.raises(OSError, match="No space left"):  # from a submit after the failure, or from close
        out.submit(lambda: done.append("a"))
        out.submit(lambda: (_ for _ in ()).throw(OSError(28, "No space left on device", "train.jsonl")))
        out.submit(lambda: done.append("c"))
        out.close()
    out.cancel()
    assert done == ["a"]
