"""The warehouse's tables, described once (CONTRACT §5): name, columns and keys.

`warehouse.py` creates the schemas and views from these, `history.py` the history tables and change sets,
`rules/engine.py` and `rules/carry_over.py` name the rules' `out_<table>` outputs after them, the Dagster
assets take their keys, descriptions and column schemas from them, and the tests iterate over them. Column
order follows CONTRACT §5; columns are only ever added (an existing warehouse gains them on its next run).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type

    @property
    def ddl(self) -> str:
        return f"{self.name} {self.type}"


def _columns(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(name, type_) for name, type_ in pairs)


@dataclass(frozen=True)
class Table:
    """A table of the warehouse that is not a night's published table (the nights, change sets, holds)."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ddl(self) -> str:
        """`name TYPE, ...[, PRIMARY KEY (...)]`, for CREATE TABLE."""
        parts = [c.ddl for c in self.columns]
        if self.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return ", ".join(parts)


@dataclass(frozen=True)
class Published:
    """A table every published night has: `nightly.<name>` (per night, keyed by `as_of`), `history.<name>`
    (validity intervals of its content columns) and the view analysts read (`roster.*`/`diagnostics.*`)."""

    name: str
    view: str  # schema.name of the view of the latest night
    columns: tuple[Column, ...]  # as_of first
    description: str  # what an analyst finds in it (the Dagster asset's description)
    # The columns that identify one of its rows within a source (besides source_id), for the change set;
    # empty for tables whose rows are not tracked as entities.
    key: tuple[str, ...] = ()
    # The columns that identify a row across sources, when a failed source's rows are carried over
    # (rules/carry_over.py); None for tables that are not carried over.
    carry_over_key: tuple[str, ...] | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def content_columns(self) -> list[str]:
        """The columns history keeps: all but `as_of`."""
        return [c.name for c in self.columns if c.name != "as_of"]

    def content_ddl(self) -> str:
        return ", ".join(c.ddl for c in self.columns if c.name != "as_of")

    @property
    def view_schema(self) -> str:
        return self.view.split(".")[0]

    @property
    def rules_output(self) -> str:
        """The table the rules leave the night's rows in (rules/roster.sql)."""
        return f"out_{self.name}"


SCHOOLS = Published(
    "schools",
    "roster.schools",
    _columns(
        ("as_of", "DATE"),
        ("school_id", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("school_unit_code", "VARCHAR"),
        ("organisation_id", "VARCHAR"),
        ("organisation_name", "VARCHAR"),
        ("stale_since", "DATE"),
    ),
    "School units (Skolenhet) in the roster, with their school authority (Huvudman).",
    key=("school_id",),
    carry_over_key=("school_id",),
)
USERS = Published(
    "users",
    "roster.users",
    _columns(
        ("as_of", "DATE"),
        ("user_id", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("given_name", "VARCHAR"),
        ("family_name", "VARCHAR"),
        ("email", "VARCHAR"),
        ("role", "VARCHAR"),
        ("protected_identity", "BOOLEAN"),
        ("civic_no_hash", "VARCHAR"),
        ("stale_since", "DATE"),
    ),
    "Students, teachers and staff who pass every rule tonight, with the school e-mail as username.",
    key=("user_id",),
    carry_over_key=("user_id",),
)
SCHOOL_AFFILIATIONS = Published(
    "school_affiliations",
    "roster.school_affiliations",
    _columns(
        ("as_of", "DATE"),
        ("user_id", "VARCHAR"),
        ("school_id", "VARCHAR"),
        ("role", "VARCHAR"),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
        ("source_id", "VARCHAR"),
        ("stale_since", "DATE"),
    ),
    "Each included user's active enrolments and duties, per school and role.",
    key=("user_id", "school_id"),
    carry_over_key=("user_id", "school_id", "role", "source_id"),
)
GROUPS = Published(
    "groups",
    "roster.groups",
    _columns(
        ("as_of", "DATE"),
        ("group_id", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("school_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("group_type", "VARCHAR"),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
        ("stale_since", "DATE"),
    ),
    "Classes and teaching groups that are synced, at a known school, and active (with look-ahead).",
    key=("group_id",),
    carry_over_key=("group_id",),
)
MEMBERSHIPS = Published(
    "memberships",
    "roster.memberships",
    _columns(
        ("as_of", "DATE"),
        ("group_id", "VARCHAR"),
        ("user_id", "VARCHAR"),
        ("role", "VARCHAR"),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
        ("source_id", "VARCHAR"),
        ("stale_since", "DATE"),
    ),
    "Students and teachers in included groups, when both are included and the membership is active.",
    key=("group_id", "user_id"),
    carry_over_key=("group_id", "user_id", "role"),
)
EXCLUSIONS = Published(
    "exclusions",
    "diagnostics.exclusions",
    _columns(
        ("as_of", "DATE"),
        ("source_id", "VARCHAR"),
        ("entity_type", "VARCHAR"),
        ("record_id", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("group_id", "VARCHAR"),
        ("school_id", "VARCHAR"),
        ("reason_code", "VARCHAR"),
        ("detail", "VARCHAR"),
        ("visible_from", "DATE"),
    ),
    "Every record held back tonight, one row per reason code, with visible_from for records held back only by dates.",
)
WARNINGS = Published(
    "warnings",
    "diagnostics.warnings",
    _columns(
        ("as_of", "DATE"),
        ("source_id", "VARCHAR"),
        ("entity_type", "VARCHAR"),
        ("record_id", "VARCHAR"),
        ("code", "VARCHAR"),
        ("detail", "VARCHAR"),
    ),
    "Field-level problems: the record stays in the roster, the bad value is repaired or dropped.",
)
# Who and what is held back (names for the validation files and `explain`; never a civic number).
EXCLUDED_PERSONS = Published(
    "excluded_persons",
    "diagnostics.excluded_persons",
    _columns(
        ("as_of", "DATE"),
        ("source_id", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("given_name", "VARCHAR"),
        ("family_name", "VARCHAR"),
        ("email", "VARCHAR"),
        ("role", "VARCHAR"),
        ("school_id", "VARCHAR"),
        ("protected_identity", "BOOLEAN"),
    ),
    "Persons held back tonight: name, school e-mail, the role they would have, their school and the "
    "protected-identity flag, for the validation files and `explain` (no civic number).",
)
EXCLUDED_GROUPS = Published(
    "excluded_groups",
    "diagnostics.excluded_groups",
    _columns(
        ("as_of", "DATE"),
        ("source_id", "VARCHAR"),
        ("group_id", "VARCHAR"),
        ("school_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("group_type", "VARCHAR"),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
    ),
    "Groups held back tonight: name, school, type and dates.",
)

# The drop each source was read from for the night (rules/freshness.py): its date, its age and whether it
# was fresh, stale (DROP_STALE) or not read at all.
SOURCE_DROPS = Published(
    "source_drops",
    "diagnostics.source_drops",
    _columns(
        ("as_of", "DATE"),
        ("source_id", "VARCHAR"),
        ("drop_date", "DATE"),
        ("drop_age_days", "INTEGER"),
        ("max_drop_age_days", "INTEGER"),
        ("status", "VARCHAR"),
    ),
    "The registry drop each source was read from tonight: its date, its age in days, the source's "
    "rules.max_drop_age_days and fresh/stale/failed (a stale drop: the registry may have stopped exporting).",
)

# Every published table, in publishing order. Queries over one night (school_counts.sql, the export sheets,
# explain) read them by their plain name.
PUBLISHED: tuple[Published, ...] = (
    SCHOOLS,
    USERS,
    SCHOOL_AFFILIATIONS,
    GROUPS,
    MEMBERSHIPS,
    EXCLUSIONS,
    WARNINGS,
    EXCLUDED_PERSONS,
    EXCLUDED_GROUPS,
    SOURCE_DROPS,
)
BY_NAME: dict[str, Published] = {t.name: t for t in PUBLISHED}

# ─── the rest of the warehouse ─────────────────────────────────────────────────────────────────────────

NIGHTS = Table(
    "nightly",
    "nights",
    _columns(
        ("as_of", "DATE"), ("published_at", "TIMESTAMP WITH TIME ZONE"), ("run_id", "VARCHAR"), ("sources", "VARCHAR[]")
    ),
    primary_key=("as_of",),
)
_CHANGE_COLUMNS = _columns(
    ("as_of", "DATE"),
    ("compared_with", "DATE"),
    ("source_id", "VARCHAR"),
    ("entity_type", "VARCHAR"),
    ("entity_id", "VARCHAR"),
    ("change", "VARCHAR"),
    ("changed_fields", "VARCHAR[]"),
    ("reasons", "VARCHAR[]"),
    ("detail", "VARCHAR"),
    ("removal_held_until", "DATE"),
)
# The change set of every published night against the published night before it (publish/history.py).
CHANGES = Table("history", "changes", _CHANGE_COLUMNS)
# Removals a removal-hold period keeps back, per night.
HELD_REMOVALS = Table(
    "history",
    "held_removals",
    _columns(
        ("as_of", "DATE"),
        ("source_id", "VARCHAR"),
        ("entity_type", "VARCHAR"),
        ("entity_id", "VARCHAR"),
        ("removal_held_until", "DATE"),
    ),
)
# The guard's record of held nights, and the change set each would have published (publish/guard.py).
HELD_NIGHTS = Table(
    "history",
    "held_nights",
    _columns(
        ("as_of", "DATE"),
        ("compared_with", "DATE"),
        ("held_at", "TIMESTAMP WITH TIME ZONE"),
        ("run_id", "VARCHAR"),
        ("reasons", "VARCHAR[]"),
        ("approved_at", "TIMESTAMP WITH TIME ZONE"),
        ("published_at", "TIMESTAMP WITH TIME ZONE"),
        # What was held and what was approved: a fingerprint of the candidate night (publish/publish.py).
        ("fingerprint", "VARCHAR"),
        ("approved_fingerprint", "VARCHAR"),
    ),
    primary_key=("as_of",),
)
HELD_CHANGES = Table("history", "held_changes", _CHANGE_COLUMNS)
# Per published night and source, how many users and memberships it published (the guard's counts of the
# night): the slow-loss window (max_removal_share_week) reads the last 7 nights here instead of counting them
# in the history intervals again every night.
NIGHT_COUNTS = Table(
    "history",
    "night_counts",
    _columns(("as_of", "DATE"), ("source_id", "VARCHAR"), ("users", "BIGINT"), ("memberships", "BIGINT")),
    primary_key=("as_of", "source_id"),
)

HISTORY_TABLES: tuple[Table, ...] = (CHANGES, HELD_REMOVALS, HELD_NIGHTS, HELD_CHANGES, NIGHT_COUNTS)
