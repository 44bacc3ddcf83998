"""The short per-source summary `skolon-pipeline run` prints: counts and reason codes, never names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from skolon_pipeline import text
from skolon_pipeline.publish import snapshot, warehouse

TOP_REASONS = 5


def summary_lines(warehouse_path: Path, as_of: dt.date, staging_dir: Path | None = None) -> list[str]:
    with snapshot.connect_published(warehouse_path) as con:
        latest = warehouse.latest_night(con)
        included = {
            (s, k): n
            for s, k, n in con.execute(
                """
                SELECT source_id, role, count(*) FROM nightly.users WHERE as_of = $d GROUP BY ALL
                UNION ALL SELECT source_id, 'groups', count(*) FROM nightly.groups WHERE as_of = $d GROUP BY ALL
                UNION ALL SELECT source_id, 'memberships', count(*) FROM nightly.memberships WHERE as_of = $d GROUP BY ALL
                UNION ALL SELECT source_id, 'schools', count(*) FROM nightly.schools WHERE as_of = $d GROUP BY ALL
                """,
                {"d": as_of},
            ).fetchall()
        }
        excluded = {
            (s, e): n
            for s, e, n in con.execute(
                """SELECT source_id, entity_type, count(DISTINCT record_id) FROM nightly.exclusions
                   WHERE as_of = ? GROUP BY ALL""",
                [as_of],
            ).fetchall()
        }
        reasons = con.execute(
            """SELECT source_id, reason_code, count(*) AS n FROM nightly.exclusions WHERE as_of = ?
               GROUP BY ALL ORDER BY source_id, n DESC, reason_code""",
            [as_of],
        ).fetchall()
        changes = {
            (s, e, c): n
            for s, e, c, n in con.execute(
                "SELECT source_id, entity_type, change, count(*) FROM history.changes WHERE as_of = ? GROUP BY ALL",
                [as_of],
            ).fetchall()
        }
        compared_with = con.execute(
            "SELECT max(compared_with) FROM history.changes WHERE as_of = ?", [as_of]
        ).fetchall()
        drops = {
            r[0]: r[1:]
            for r in con.execute(
                """SELECT source_id, drop_date, drop_age_days, max_drop_age_days, status FROM nightly.source_drops
               WHERE as_of = ?""",
                [as_of],
            ).fetchall()
        }
        sources = sorted({s for s, _ in included} | {s for s, _ in excluded} | set(drops))
    pulls = _pulls(staging_dir, as_of)
    sources = sorted(set(sources) | set(pulls))
    lines = [f"night {as_of}: published" + ("" if latest == as_of else f" (the latest published night is {latest})")]
    for source in sources:
        users = ", ".join(
            f"{included.get((source, role), 0)} {label}"
            for role, label in (("student", "students"), ("teacher", "teachers"), ("staff", "staff"))
        )
        lines.append(f"  source {source}:")
        if source in pulls:
            lines.append(f"    pull: {pulls[source]}")
        if source in drops:
            lines.append(f"    {drop_line(*drops[source])}")
        lines.append(
            f"    included: {included.get((source, 'schools'), 0)} schools, {users}, "
            f"{included.get((source, 'groups'), 0)} groups, {included.get((source, 'memberships'), 0)} memberships"
        )
        lines.append(
            "    excluded: "
            + ", ".join(f"{excluded.get((source, e), 0)} {e}s" for e in ("person", "group", "membership"))
        )
        if compared_with[0][0] is not None:
            lines.append(
                f"    changes since {compared_with[0][0]}: "
                + ", ".join(
                    f"{label} +{changes.get((source, e, 'added'), 0)} -{changes.get((source, e, 'removed'), 0)} "
                    f"~{changes.get((source, e, 'updated'), 0)}"
                    for e, label in (("user", "users"), ("group", "groups"), ("membership", "memberships"))
                )
                + "".join(
                    f", {changes[(source, e, 'removal_held')]} {e} removals held"
                    for e in ("user", "group", "membership")
                    if (source, e, "removal_held") in changes
                )
            )
        top = [(code, n) for s, code, n in reasons if s == source][:TOP_REASONS]
        if top:
            lines.append("    most common reasons: " + ", ".join(f"{code} {n}" for code, n in top))
    return lines


def drop_line(drop_date: dt.date | None, age: int | None, max_age: int, status: str) -> str:
    """'drop of 2026-11-21 (10 days old): STALE, older than max_drop_age_days (3); ...'."""
    if drop_date is None:
        return "drop: none read tonight (the source failed)"
    line = f"drop of {drop_date} ({age} day{'s' if age != 1 else ''} old)"
    if status == "stale":
        line += f": STALE, older than max_drop_age_days ({max_age}); the registry may have stopped exporting"
    return line


def stale_sources(warehouse_path: Path, as_of: dt.date) -> list[tuple[str, dt.date, int]]:
    """(source, drop date, age in days) of the night's sources whose drop was stale (DROP_STALE)."""
    with snapshot.connect_published(warehouse_path) as con:
        return con.execute(
            """SELECT source_id, drop_date, drop_age_days FROM nightly.source_drops
               WHERE as_of = ? AND status = 'stale' ORDER BY source_id""",
            [as_of],
        ).fetchall()


def _pulls(staging_dir: Path | None, as_of: dt.date) -> dict[str, str]:
    """Tonight's pull of each API source, one line each (kind, counts, pages, retries, duration, or the failure)."""
    from skolon_pipeline.pull.drop import PULL_STATUS_SUFFIX, describe_status

    folder = staging_dir / as_of.isoformat() if staging_dir is not None else None
    if folder is None or not folder.is_dir():
        return {}
    return {
        path.name.removesuffix(PULL_STATUS_SUFFIX): describe_status(path)
        for path in sorted(folder.glob(f"*{PULL_STATUS_SUFFIX}"))
    }


def print_summary(
    warehouse_path: Path, as_of: dt.date, run_id: str | None = None, staging_dir: Path | None = None
) -> None:
    for line in summary_lines(warehouse_path, as_of, staging_dir):
        print(text.printable(line))
    if run_id:
        print(f"  Dagster run {run_id}")
