"""The benchmark reports every target of the performance issue against what the run measured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import run_bench


def _row(persons: int, shape: str, wall: float, rss: float, floor: float = 10.0, ok: bool = True) -> dict:
    return {
        "persons": persons,
        "shape": shape,
        "wall": wall,
        "rss": rss,
        "floor_wall": floor,
        "ratio": wall / floor,
        "ratios": [wall / floor],
        "ok": ok,
    }


def test_ratios_and_absolute_targets_are_printed_with_whether_they_are_met():
    rows = [
        _row(200_000, "paged", 25.0, 1500),
        _row(200_000, "one-file", 31.0, 1600),
        _row(800_000, "paged", 100.0, 3000),
        _row(2_000_000, "paged", 320.0, 3900),
    ]
    lines = run_bench.ratio_lines(rows)
    assert "200,000 paged: night / floor = 2.50x (target <= 3x at 200 000)" in lines
    assert "200,000: one-file / paged = 1.24x (target <= 1.2x)" in lines
    assert "800,000 / 200,000 persons: 4.00x the time for 4x the size (target <= 4.2x)" in lines
    assert "200,000 paged: peak RSS 1,500 MB (target <= 2,048 MB: met)" in lines
    assert "2,000,000 paged: night 320.0 s (target <= 300 s: NOT met)" in lines
    assert "2,000,000 paged: peak RSS 3,900 MB (target <= 4,096 MB: met)" in lines


@pytest.mark.parametrize(
    ("wall", "rss", "ok", "time_met", "rss_met"),
    [(290.0, 4000, True, "met", "met"), (290.0, 4000, False, "NOT met", "NOT met")],
)
def test_a_failed_run_meets_no_target(wall, rss, ok, time_met, rss_met):
    lines = run_bench.absolute_lines([_row(2_000_000, "paged", wall, rss, ok=ok)])
    assert lines == [
        f"2,000,000 paged: night {wall:.1f} s (target <= 300 s: {time_met})",
        f"2,000,000 paged: peak RSS {rss:,} MB (target <= 4,096 MB: {rss_met})",
    ]


def test_each_night_is_compared_with_the_floors_around_it_and_the_median_of_rounds_is_printed():
    # floor 10, night 20, floor 6, night 30, floor 14, night 24, floor 10: the machine slowed down and sped up.
    assert run_bench.bracketed_ratios([20.0, 30.0, 24.0], [10.0, 6.0, 14.0, 10.0]) == [2.5, 3.0, 2.0]
    row = {**_row(200_000, "paged", 24.0, 1500), "ratio": 2.5, "ratios": [2.5, 3.0, 2.0]}
    assert run_bench.ratio_lines([row])[0] == (
        "200,000 paged: night / floor = 2.50x (median of 2.50, 3.00, 2.00) (target <= 3x at 200 000)"
    )


def test_a_steps_cpu_is_read_from_the_samples_at_or_before_its_start_and_end():
    # (epoch seconds, CPU seconds so far), every 0.5 s: 1 core busy, then 2, then idle.
    samples = [(100.0, 0.0), (100.5, 0.5), (101.0, 1.0), (101.5, 2.0), (102.0, 3.0), (102.5, 3.0)]
    assert run_bench.cpu_between(samples, 100.0, 101.0) == 1.0
    assert run_bench.cpu_between(samples, 101.0, 102.0) == 2.0
    assert run_bench.cpu_between(samples, 101.2, 101.7) == 1.0  # the samples at 101.0 and 101.5
    assert run_bench.cpu_between(samples, 90.0, 100.7) == 0.5  # before the first sample: the first
    assert run_bench.cpu_between(samples, 102.0, 200.0) == 0.0
    assert run_bench.cpu_between([], 100.0, 101.0) == 0.0


def test_the_cpu_line_gives_the_least_ratio_the_nights_work_allows_on_every_core(monkeypatch):
    monkeypatch.setattr(run_bench.psutil, "cpu_count", lambda: 2)
    row = {**_row(200_000, "paged", 20.0, 1500), "cpu": 30.0, "night_floor": 5.0}
    assert run_bench.cpu_line(row) == (
        "200,000 paged: night CPU 30.0 s in 20.0 s (1.50 of 2 cores); on all 2 cores all the time 15.0 s, "
        "3.00x the floor"
    )


def test_each_step_figure_is_a_table_with_a_row_per_night():
    rows = [
        {**_row(200_000, "paged", 20.0, 1500), "steps": {"extract": 3.24, "rules": 4.0}, "step_cpu": {"extract": 5.5}},
        {
            **_row(800_000, "paged", 70.0, 3000),
            "steps": {"extract": 16.0},
            "step_cpu": {"extract": 25.9, "rules": 28.1},
        },
    ]
    assert run_bench.step_table(rows, ["extract", "rules"], "steps") == [
        "| persons | shape | extract | rules |",
        "|---:|---|---:|---:|",
        "| 200,000 | paged | 3.2 | 4.0 |",
        "| 800,000 | paged | 16.0 | 0.0 |",
    ]
    assert run_bench.step_table(rows, ["extract", "rules"], "step_cpu")[2:] == [
        "| 200,000 | paged | 5.5 | 0.0 |",
        "| 800,000 | paged | 25.9 | 28.1 |",
    ]


def test_the_next_night_is_printed_beside_the_first_for_the_sizes_that_ran_one():
    following = {"wall": 16.0, "rss": 1650.0, "ok": True, "steps": {"rules__change_set": 1.54, "publish_night": 0.2}}
    rows = [
        {**_row(200_000, "paged", 20.0, 1500), "next": following},
        {**_row(800_000, "paged", 70.0, 3000), "next": {**following, "ok": False}},
        {**_row(2_000_000, "paged", 230.0, 3700), "next": None},  # run without --next-night
    ]
    assert run_bench.next_night_lines(rows) == [
        "200,000 paged: the next night 16.0 s (0.80x the first night), peak RSS 1,650 MB; "
        "rules__change_set 1.5, publish_night 0.2",
        "800,000 paged: the next night 16.0 s (FAILED) (0.23x the first night), peak RSS 1,650 MB; "
        "rules__change_set 1.5, publish_night 0.2",
    ]
