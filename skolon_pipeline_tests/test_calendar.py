import datetime as dt

from skolon_pipeline.calendar import effective_start

TERMS = [dt.date(2026, 8, 17), dt.date(2027, 1, 11)]


def test_effective_start_outside_and_inside_windows():
    assert effective_start(dt.date(2026, 12, 11), TERMS, 30) == dt.date(2026, 12, 11)
    assert effective_start(dt.date(2026, 12, 12), TERMS, 30) == dt.date(2027, 1, 11)
    assert effective_start(dt.date(2027, 1, 11), TERMS, 30) == dt.date(2027, 1, 11)
    assert effective_start(dt.date(2027, 1, 12), TERMS, 30) == dt.date(2027, 1, 12)
    assert effective_start(dt.date(2026, 8, 1), TERMS, 0) == dt.date(2026, 8, 1)


def test_overlapping_windows_take_the_latest_term_start():
    terms = [dt.date(2027, 1, 11), dt.date(2027, 1, 25)]
    assert effective_start(dt.date(2027, 1, 5), terms, 30) == dt.date(2027, 1, 25)
