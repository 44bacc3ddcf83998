"""One partition per night: the as-of date, in the installation's time zone."""

from __future__ import annotations

import datetime as dt

import dagster as dg

# Earliest night that can be backfilled.
FIRST_NIGHT = "2024-01-01"


def nightly_partitions(timezone: str) -> dg.DailyPartitionsDefinition:
    # end_offset=1: the night that has just begun is a partition already, so the 02:00 run can take it.
    return dg.DailyPartitionsDefinition(start_date=FIRST_NIGHT, timezone=timezone, end_offset=1)


def as_of(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)
