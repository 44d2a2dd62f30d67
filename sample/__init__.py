"""A deterministic synthetic Memento-format corpus (`mementos sample`), for tests, the demo and bench.

Its own top-level package, apart from the analytics package `warehouse/`: it is a
test-data generator, not analytics, and it needs only `foundation` (the markup
strings, its error class). The logic is in `generator.py`; the text its sentence
pools are made from is data, in `pools.json`.
"""

from mementos.sample.generator import (  # noqa: F401  (the package's public names)
    DEFECT_KINDS,
    EVERY_KIND_MIN_TRACES,
    FULL_DEFECT_KINDS,
    GENERATOR_VERSION,
    SampleSummary,
    write_sample,
)
from mementos.sample.shapes import FORMATS, write_sample_as  # noqa: F401
