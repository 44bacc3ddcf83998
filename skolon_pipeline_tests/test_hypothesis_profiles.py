"""The fuzz tests' Hypothesis profiles (hypothesis_profiles.py): reproducible in CI, exploring at night,
remembering what failed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

REPO = Path(__file__).resolve().parents[1]


def test_profiles():
    ci, dev, nightly = (settings.get_profile(name) for name in ("ci", "dev", "nightly"))
    assert ci.derandomize and ci.database is None  # the same inputs every run
    assert not dev.derandomize and not nightly.derandomize
    assert isinstance(dev.database, DirectoryBasedExampleDatabase) and nightly.database == dev.database
    assert nightly.max_examples >= 20 * ci.max_examples
    assert all(p.deadline is None for p in (ci, dev, nightly))


@pytest.mark.parametrize("ci_env", [{}, {"CI": "true"}], ids=["dev-machine", "ci-machine"])
def test_the_profile_is_chosen_on_the_command_line(tmp_path, ci_env):
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "from hypothesis import settings\n"
        "def test_probe():\n"
        "    print('PROFILE', settings.default.max_examples, settings.default.derandomize)\n",
        encoding="utf-8",
    )
    # The probe runs under the profiles exactly as the suite registers them (without the suite's fixtures).
    (tmp_path / "conftest.py").write_text(
        "from skolon_pipeline_tests import hypothesis_profiles  # noqa: F401\n", encoding="utf-8"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(probe),
            "--hypothesis-profile=nightly",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "SKOLON_HYPOTHESIS_DB": str(tmp_path / "db"), **ci_env},
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "PROFILE 320 False" in out.stdout


def test_a_failing_input_is_remembered_and_tried_first(tmp_path):
    db = DirectoryBasedExampleDatabase(tmp_path / "db")
    tried: list[int] = []

    @settings(settings.get_profile("dev"), database=db, print_blob=False)
    @given(st.integers())
    def check(n: int) -> None:
        tried.append(n)
        assert n < 10_000

    with pytest.raises(AssertionError):
        check()
    assert any(p.is_file() for p in (tmp_path / "db").rglob("*"))  # the failing input is saved
    tried.clear()
    with pytest.raises(AssertionError):
        check()
    assert tried[0] == 10_000  # the next run starts with the input that failed
