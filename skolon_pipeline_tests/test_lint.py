"""The linters CI runs before the tests (.ci/run), here too so that no landing leaves the tree unclean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_finds_nothing():
    out = _run(sys.executable, "-m", "ruff", "check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_ruff_format_would_change_nothing():
    out = _run(sys.executable, "-m", "ruff", "format", "--check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_sqlfluff_finds_nothing_in_the_sql():
    out = _run(sys.executable, "-m", "sqlfluff", "lint", "--processes", "1", "skolon_pipeline")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
