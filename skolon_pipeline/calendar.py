"""The look-ahead calendar (CONTRACT §3): term-start windows and the effective start date.

In the `lookahead_days` before a term start `t` (the window `[t - lookahead_days, t]`, inclusive) anything
that starts by `t` is loaded ahead, so the effective start date is `t`; otherwise it is the night itself.
End dates are never brought forward. The per-record `visible_from` is computed in SQL from the same windows
(`rules/roster.sql`), so this module hands the windows over as rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class TermWindow:
    term_start: dt.date
    window_start: dt.date


def term_windows(term_starts: Iterable[dt.date], lookahead_days: int) -> list[TermWindow]:
    return [
        TermWindow(term_start=t, window_start=t - dt.timedelta(days=lookahead_days)) for t in sorted(set(term_starts))
    ]


def effective_start(as_of: dt.date, term_starts: Iterable[dt.date], lookahead_days: int) -> dt.date:
    """The date against which start dates are compared on night `as_of`.

    The latest term start whose window holds `as_of` wins when windows overlap, so the effective start never
    moves backwards while the night moves forward through overlapping windows.
    """
    inside = [
        w.term_start for w in term_windows(term_starts, lookahead_days) if w.window_start <= as_of <= w.term_start
    ]
    return max(inside) if inside else as_of
