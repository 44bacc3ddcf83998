"""The rules stage (all sources at once) and the publish stage (the warehouse's roster and diagnostics)."""

import datetime as dt
from collections import Counter

import dagster as dg
import duckdb

from skolon_pipeline import night
from skolon_pipeline.config import Installation
from skolon_pipeline.defs.guard import CHANGE_SET_KEY, build_guard_assets
from skolon_pipeline.defs.meta import OWNERS, PII, PII_TABLES, RULES_SQL, sql_version
from skolon_pipeline.defs.partitions import as_of
from skolon_pipeline.defs.resources import WAREHOUSE_POOL, SkolonResource
from skolon_pipeline.defs.sources import validate_key
from skolon_pipeline.publish import snapshot, tables, warehouse

RULES_GROUP = "rules"
ROSTER_GROUP = "roster"
DIAGNOSTICS_GROUP = "diagnostics"

ELIGIBILITY_KEY = dg.AssetKey(["rules", "eligibility"])
SOURCES_KEY = dg.AssetKey(["diagnostics", "sources"])
CONSERVATION_CHECK = "conservation"
# The roster is published every night at about 02:00: a day and a few hours without a new night is late (warn),
# a day and a half is a failure the UI and freshness alerts show.
ROSTER_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=36), warn_window=dt.timedelta(hours=27)
)

# published table → (asset key, group, description): roster/<table> or diagnostics/<table>, as its view.
PUBLISHED: dict[str, tuple[dg.AssetKey, str, str]] = {
    t.name: (dg.AssetKey(t.view.split(".")), t.view_schema, t.description) for t in tables.PUBLISHED
}


def build_roster_assets(installation: Installation, partitions_def: dg.PartitionsDefinition):
    source_ids = [s.id for s in installation.sources]

    @dg.asset(
        key=ELIGIBILITY_KEY,
        deps=[validate_key(s) for s in source_ids],
        group_name=RULES_GROUP,
        kinds={"duckdb", "sql"},
        owners=OWNERS,
        tags=PII,
        code_version=sql_version(*RULES_SQL),
        partitions_def=partitions_def,
        pool=WAREHOUSE_POOL,  # reads the last published night for a failed source's carry-over
        check_specs=[
            dg.AssetCheckSpec(
                CONSERVATION_CHECK,
                asset=ELIGIBILITY_KEY,
                blocking=True,
                description="Every person, group and membership read is in the roster or has an exclusion reason.",
            )
        ],
    )
    def eligibility(context: dg.AssetExecutionContext, skolon: SkolonResource):
        """The eligibility rules in DuckDB SQL over all sources' validated staging tables: the candidate
        roster, every exclusion reason, and visible_from under the look-ahead windows. Nothing is published
        here; the conservation check blocks publishing if any record would vanish without a reason. A source
        that could not be read tonight is left out, and its last published roster carried over (stale)."""
        try:
            evaluated = night.evaluate(
                skolon.installation(), as_of(context), skolon.settings.staging_dir, skolon.settings.warehouse
            )
        except night.AllSourcesFailed as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        yield dg.MaterializeResult(
            metadata={
                "failed_sources": ", ".join(f.source_id for f in evaluated.failed),
                **{f"carried_over/{t}": n for t, n in evaluated.carried_over.items()},
                "rules_db": dg.MetadataValue.path(str(evaluated.rules_db)),
                **{f"rows/{t.removeprefix('out_')}": n for t, n in evaluated.row_counts.items()},
            }
        )
        missing = {entity: gap["missing"] for entity, gap in evaluated.conservation.items()}
        yield dg.AssetCheckResult(
            check_name=CONSERVATION_CHECK,
            passed=not any(missing.values()),
            metadata={
                **{f"missing/{entity}": n for entity, n in missing.items()},
                "sample": dg.MetadataValue.json({e: g["sample"] for e, g in evaluated.conservation.items()}),
            },
        )

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                key,
                group_name=group,
                description=description,
                deps=[ELIGIBILITY_KEY, CHANGE_SET_KEY],
                kinds={"duckdb"},
                partitions_def=partitions_def,
                owners=OWNERS,
                tags=PII if table in PII_TABLES else {},
                code_version=sql_version(*RULES_SQL),
                metadata={"dagster/table_name": ".".join(key.path)},
                freshness_policy=ROSTER_FRESHNESS if group == ROSTER_GROUP else None,
            )
            for table, (key, group, description) in PUBLISHED.items()
        ],
        partitions_def=partitions_def,
        pool=WAREHOUSE_POOL,
        name="publish_night",
    )
    def publish_night(context: dg.AssetExecutionContext, skolon: SkolonResource):
        """Publishes the night into the warehouse in one transaction (replacing that night only, in the
        history intervals and the change set); the roster and diagnostics views show the latest published
        night. It installs the warehouse the change_set step of this run prepared, if neither the published
        warehouse nor the rules' output changed since; otherwise it publishes in full, the guard applied again
        inside the transaction, so a held night is never published."""
        night_date = as_of(context)
        try:
            published = night.publish(
                skolon.installation(),
                skolon.settings.warehouse,
                night.rules_db(skolon.settings.staging_dir, night_date),
                night_date,
                context.run.run_id,
            )
        except night.NightHeld as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        counts = published.counts
        with snapshot.connect_published(skolon.settings.warehouse) as con:
            reasons = _reason_counts(con, night_date)
            latest = warehouse.latest_night(con)
            for table, (key, _, _) in PUBLISHED.items():
                schema = dg.TableSchema(columns=[dg.TableColumn(c.name, c.type) for c in tables.BY_NAME[table].columns])
                metadata = {
                    "dagster/row_count": counts[table],
                    "dagster/column_schema": schema,
                    "table": f"nightly.{table}",
                    "history": f"history.{table}",
                    "latest_night": latest.isoformat() if latest else "",
                }
                metadata.update({f"source/{source}": n for source, n in _source_counts(con, table, night_date)})
                if table == "exclusions":
                    metadata.update({f"reason/{code}": n for code, n in sorted(reasons.items())})
                yield dg.MaterializeResult(asset_key=key, metadata=metadata)

    @dg.asset(
        key=SOURCES_KEY,
        deps=[key for key, _, _ in PUBLISHED.values()],
        group_name=DIAGNOSTICS_GROUP,
        kinds={"duckdb"},
        owners=OWNERS,
        partitions_def=partitions_def,
    )
    def sources_fresh(context: dg.AssetExecutionContext, skolon: SkolonResource) -> dg.MaterializeResult:
        """Whether every source was read tonight. Runs after the night is published: when a source failed,
        the others are already in the roster and its own roster was carried over (stale), and this step fails
        the run, naming the source and the problem, so the failure is not missed."""
        night_date = as_of(context)
        failures = [f for s in source_ids if (f := night.source_failure(skolon.settings.staging_dir, night_date, s))]
        if failures:
            raise dg.Failure(
                description="; ".join(f.message for f in failures)
                + " (the other sources are published; the failed source's last published roster is carried over, "
                "flagged stale)",
                metadata={"failed_sources": ", ".join(f.source_id for f in failures)},
                allow_retries=False,
            )
        return dg.MaterializeResult(metadata={"fresh_sources": ", ".join(source_ids)})

    return [
        eligibility,
        *build_guard_assets(ELIGIBILITY_KEY, RULES_GROUP, partitions_def),
        publish_night,
        sources_fresh,
    ]


def _source_counts(con: duckdb.DuckDBPyConnection, table: str, night_date) -> list[tuple[str, int]]:
    """Rows per source of a published table that night (numbers, so the UI plots them night by night)."""
    if "source_id" not in tables.BY_NAME[table].column_names:
        return []
    # `table` is one of the code's own table names (tables.PUBLISHED), never registry data.
    return con.execute(
        f"SELECT source_id, count(*) FROM nightly.{table} WHERE as_of = ? GROUP BY 1 ORDER BY 1", [night_date]
    ).fetchall()


def _reason_counts(con: duckdb.DuckDBPyConnection, night_date) -> Counter:
    rows = con.execute(
        "SELECT reason_code, count(*) FROM nightly.exclusions WHERE as_of = ? GROUP BY 1", [night_date]
    ).fetchall()
    return Counter(dict(rows))
