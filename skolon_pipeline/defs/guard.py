"""The change set of the night and the mass-removal guard, between the rules and publishing."""

import dagster as dg

from skolon_pipeline import night
from skolon_pipeline.defs.meta import OWNERS, PII
from skolon_pipeline.defs.partitions import as_of
from skolon_pipeline.defs.resources import WAREHOUSE_POOL, SkolonResource

CHANGE_SET_KEY = dg.AssetKey(["rules", "change_set"])
REMOVAL_GUARD_CHECK = "removal_guard"
# Run tag of `skolon-pipeline run --dry-run`: the guard reports but records nothing, and nothing is published.
DRY_RUN_TAG = "skolon/dry_run"


def build_guard_assets(eligibility_key: dg.AssetKey, group_name: str, partitions_def: dg.PartitionsDefinition):
    @dg.asset(
        key=CHANGE_SET_KEY,
        deps=[eligibility_key],
        group_name=group_name,
        kinds={"duckdb", "sql"},
        owners=OWNERS,
        tags=PII,
        partitions_def=partitions_def,
        pool=WAREHOUSE_POOL,
        check_specs=[
            dg.AssetCheckSpec(
                REMOVAL_GUARD_CHECK,
                asset=CHANGE_SET_KEY,
                blocking=True,
                description="Holds the night when a source would lose more than max_removal_share of its users or "
                "memberships, or all its users; `skolon-pipeline approve --as-of D` publishes a held night.",
            )
        ],
    )
    def change_set(context: dg.AssetExecutionContext, skolon: SkolonResource):
        """What tonight's candidate roster would change against the last published night before it: users,
        groups, memberships, school affiliations and schools added, removed and updated, with removals held
        back during `rules.hold_removals` periods. Metadata: counts per entity and change. The blocking
        `removal_guard` check holds the night (nothing published, the previous roster stays) on a mass
        removal; a held night is recorded in history.held_nights and its change set in history.held_changes.
        A night let through is published on this step's private copy of the warehouse, kept beside it as the
        prepared warehouse that publish_night installs (not on a dry run)."""
        dry_run = context.run.tags.get(DRY_RUN_TAG) == "true"
        night_date = as_of(context)
        result = night.check(
            skolon.installation(),
            skolon.settings.warehouse,
            skolon.settings.staging_dir,
            night_date,
            context.run.run_id,
            record=not dry_run,
        )
        yield dg.MaterializeResult(
            metadata={
                "compared_with": result.compared_with.isoformat() if result.compared_with else "",
                "dry_run": dry_run,
                **{f"{key}": n for key, n in sorted(result.counts.items())},
                **{f"removal_held_until/{s}": until for s, until in sorted(result.removal_held_until.items())},
            }
        )
        metadata: dict = {"approved": result.approved, "reasons": dg.MetadataValue.json(result.reasons)}
        for source_id, stats in result.per_source.items():
            metadata.update({f"{source_id}/{k}": v for k, v in stats.items()})
        metadata["sample_ids_to_remove"] = dg.MetadataValue.json(result.samples)
        yield dg.AssetCheckResult(
            check_name=REMOVAL_GUARD_CHECK,
            passed=not result.blocks,
            # A dry run only reports: the run does not fail for a night that would be held.
            severity=dg.AssetCheckSeverity.WARN if dry_run else dg.AssetCheckSeverity.ERROR,
            description="; ".join(result.reasons) if result.blocks else None,
            metadata=metadata,
        )

    return [change_set]
