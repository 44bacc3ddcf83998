"""Hypothesis profiles of the fuzz tests, registered by conftest.py: `pytest --hypothesis-profile=NAME`."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

# Hypothesis (the fuzz tests): `pytest --hypothesis-profile=NAME`, default `ci`.
# * ci: derandomised, so every run tries the same inputs: the suite is reproducible and its time known (Hypothesis
#   allows no example database with derandomize); 5 examples (about a second each: a night's extract, validation and
#   rules), the exploring is the nightly profile's job;
# * dev: new random inputs on every run; a failing input is saved in the example database and tried first next
#   time, until it passes;
# * nightly: the same with 64 times CI's examples (a few minutes per fuzz test): new inputs night after night.
#   Keep the database (`.hypothesis/examples`, or SKOLON_HYPOTHESIS_DB) between nightly runs, and turn each
#   failure found into an `@example` of its test once understood.
EXAMPLES = DirectoryBasedExampleDatabase(
    os.environ.get("SKOLON_HYPOTHESIS_DB") or Path(__file__).resolve().parents[1] / ".hypothesis" / "examples"
)
_FUZZ = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=5, derandomize=True, database=None, **_FUZZ)
# derandomize=False said explicitly: with CI set in the environment Hypothesis' own default is derandomised, and a
# profile inherits what it does not say.
settings.register_profile("dev", max_examples=20, derandomize=False, database=EXAMPLES, **_FUZZ)
settings.register_profile("nightly", max_examples=320, derandomize=False, database=EXAMPLES, **_FUZZ)
settings.load_profile("ci")  # --hypothesis-profile (Hypothesis' pytest plugin) loads another after this
