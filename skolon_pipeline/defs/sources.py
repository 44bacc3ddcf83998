"""Per-source assets, generated from sources.yaml so the lineage graph shows each registry:
`extract/<source>` reads the night's drop into the source's staging database, `validate/<source>` runs the
Pandera models over it, with one asset check per canonical table.

Source isolation: a source whose drop cannot be read does not raise (that would skip the rules and publish of
every other source). Its extract step records the failure in its staging file and reports it as the failed
ERROR-severity check `readable` (shown red on the asset in the UI, with the file and the problem); validate
passes it on; the rules carry its last published roster over, and `diagnostics/sources` fails the run after
the others have been published."""

import dagster as dg

from skolon_pipeline import night
from skolon_pipeline.validate.canonical import CANONICAL_TABLES
from skolon_pipeline.config import Source
from skolon_pipeline.defs.partitions import as_of
from skolon_pipeline.defs.resources import SkolonResource
from skolon_pipeline.sources.civic import DEMO_KEY_WARNING, KEY_CREATED_WARNING

EXTRACT_GROUP = "extract"
READABLE_CHECK = "readable"
VALIDATE_GROUP = "validate"


def extract_key(source_id: str) -> dg.AssetKey:
    return dg.AssetKey(["extract", source_id])


def validate_key(source_id: str) -> dg.AssetKey:
    return dg.AssetKey(["validate", source_id])


def table_check_name(table: str) -> str:
    """The asset check of one canonical table, e.g. `persons_valid`."""
    return f"{table}_valid"


def build_source_assets(source: Source, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=extract_key(source.id),
        group_name=EXTRACT_GROUP,
        kinds={"duckdb", "json" if source.format == "ss12000" else "csv"},
        partitions_def=partitions_def,
        description=(
            f"Registry drop of source `{source.id}` ({source.format}): the newest drop dated on or before the "
            "night, flattened into the canonical staging tables (persons, e-mails, enrolments, duties, groups, "
            "memberships, teacher assignments ...) in the source's own staging database."
        ),
        metadata={"source_id": source.id, "format": source.format},
        check_specs=[
            dg.AssetCheckSpec(
                READABLE_CHECK, asset=extract_key(source.id),
                description="The drop passed the package stage (files, headers, encoding); when it fails, the "
                            "source's last published roster is carried over, flagged stale, and the run fails "
                            "after the other sources are published.",
            )
        ],
    )
    def extract_asset(context: dg.AssetExecutionContext, skolon: SkolonResource):
        # The source as configured now (paths resolved from the resource), not as when the code was loaded.
        configured = skolon.installation().source(source.id)
        extracted = night.extract_isolated(configured, as_of(context), skolon.settings.staging_dir)
        if isinstance(extracted, night.SourceFailed):
            context.log.error(extracted.message)
            yield dg.MaterializeResult(metadata={"status": "failed", "file": extracted.file or ""})
            yield dg.AssetCheckResult(
                check_name=READABLE_CHECK, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                description=extracted.message,
                metadata={"source_id": source.id, "file": extracted.file or "", "problem": extracted.message},
            )
            return
        if extracted.demo_key:
            context.log.warning(DEMO_KEY_WARNING)
        if extracted.key_created:
            context.log.warning(KEY_CREATED_WARNING.format(path=extracted.key_origin))
        yield dg.MaterializeResult(
            metadata={
                "status": "read",
                "pseudonym_key": extracted.key_origin,
                "drop_date": extracted.drop_date.isoformat(),
                "drop_dir": dg.MetadataValue.path(str(extracted.drop_dir)),
                "staging_file": dg.MetadataValue.path(str(extracted.staging_file)),
                **{f"rows/{table}": count for table, count in extracted.row_counts.items()},
            }
        )
        yield dg.AssetCheckResult(check_name=READABLE_CHECK, passed=True, metadata={"source_id": source.id})

    @dg.asset(
        key=validate_key(source.id),
        deps=[extract_asset],
        group_name=VALIDATE_GROUP,
        kinds={"pandera", "duckdb"},
        partitions_def=partitions_def,
        description=(
            f"Source `{source.id}` checked against the canonical Pandera models, lazily: every failing row "
            "becomes an INVALID_RECORD exclusion of the record that owns it (naming field and check), and the "
            "night goes on. One asset check per table lists the failure cases (ids and field names only)."
        ),
        check_specs=[
            dg.AssetCheckSpec(table_check_name(table), asset=validate_key(source.id), description=f"{table} rows pass the model")
            for table in CANONICAL_TABLES
        ],
        metadata={"source_id": source.id},
    )
    def validate_asset(context: dg.AssetExecutionContext, skolon: SkolonResource):
        failure = night.source_failure(skolon.settings.staging_dir, as_of(context), source.id)
        if failure is not None:
            yield dg.MaterializeResult(metadata={"status": "not validated: the source could not be read"})
            for table in CANONICAL_TABLES:
                yield dg.AssetCheckResult(check_name=table_check_name(table), passed=False,
                                          severity=dg.AssetCheckSeverity.WARN,
                                          metadata={"status": "not validated: the source could not be read"})
            return
        path = night.staging_file(skolon.settings.staging_dir, as_of(context), source.id)
        reports = night.validate(source.id, path)
        yield dg.MaterializeResult(
            metadata={
                "invalid_records": sum(r.failures for r in reports),
                **{f"rows/{r.table}": r.rows for r in reports},
            }
        )
        for report in reports:
            yield dg.AssetCheckResult(
                check_name=table_check_name(report.table),
                passed=report.failures == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "rows": report.rows,
                    "failures": report.failures,
                    "failure_cases": dg.MetadataValue.json(report.failure_cases),
                },
            )

    return [extract_asset, validate_asset]
