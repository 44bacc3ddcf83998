"""One partition per night: the as-of date, in the installation's time zone."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from skolon_pipeline.config import DEFAULT_FIRST_NIGHT


def nightly_partitions(timezone: str, first_night: dt.date = DEFAULT_FIRST_NIGHT) -> dg.DailyPartitionsDefinition:
    """Every night from `first_night` (sources.yaml, CONTRACT §1) to the one that has just begun."""
    # end_offset=1: the night that has just begun is a partition already, so the 02:00 run can take it.
    return dg.DailyPartitionsDefinition(start_date=first_night.isoformat(), timezone=timezone, end_offset=1)


def as_of(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)
