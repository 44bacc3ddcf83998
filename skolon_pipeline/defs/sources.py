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
from skolon_pipeline.config import Source
from skolon_pipeline.defs.meta import OWNERS, PII, reader_sql, sql_version
from skolon_pipeline.defs.partitions import as_of
from skolon_pipeline.defs.resources import SkolonResource
from skolon_pipeline.pull.drop import ENTITIES as PULLED_ENTITIES
from skolon_pipeline.pull.drop import PullResult, public_url, pull_source, write_status
from skolon_pipeline.rules.freshness import DROP_STALE, Drop
from skolon_pipeline.sources.civic import DEMO_KEY_WARNING, KEY_CREATED_WARNING
from skolon_pipeline.sources.drops import SourceError
from skolon_pipeline.validate.canonical import CANONICAL_TABLES

PULL_GROUP = "pull"
PULLED_CHECK = "pulled"
REPULL_TAG = "skolon/repull"  # a run tagged so pulls a night again whose drop exists (`run --repull`)
EXTRACT_GROUP = "extract"
READABLE_CHECK = "readable"
DROP_FRESH_CHECK = "drop_fresh"
VALIDATE_GROUP = "validate"


def extract_key(source_id: str) -> dg.AssetKey:
    return dg.AssetKey(["extract", source_id])


def pull_key(source_id: str) -> dg.AssetKey:
    return dg.AssetKey(["pull", source_id])


def pull_metadata(result: PullResult) -> dict:
    """What the UI shows of a pull: kind, counts, pages, retries, duration (never a credential)."""
    metadata: dict = {"status": result.status, "base_url": result.base_url}
    if result.note:
        metadata["note"] = result.note
    if result.drop_dir is not None:
        metadata["drop_dir"] = dg.MetadataValue.path(str(result.drop_dir))
    if result.status == "pulled":
        metadata |= {
            "kind": result.kind,
            "retries": result.retries,
            "requests": result.requests,
            "duration_seconds": dg.MetadataValue.float(result.duration_seconds),
            "pages": sum(result.pages.values()),
            **{f"records/{entity}": result.counts.get(entity, 0) for entity in PULLED_ENTITIES},
            **{f"changed/{entity}": n for entity, n in result.changed.items()},
            **{f"deleted/{entity}": n for entity, n in result.deleted.items()},
        }
    return metadata


def build_pull_asset(source: Source, partitions_def: dg.PartitionsDefinition, timezone: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=pull_key(source.id),
        group_name=PULL_GROUP,
        kinds={"api", "json"},
        owners=OWNERS,
        tags=PII,
        partitions_def=partitions_def,
        description=(
            f"The night's drop of source `{source.id}`, pulled from the registry's SS12000 API "
            f"({public_url(source.api.url)}): OAuth2 client credentials, every page of organisations, persons, "
            "duties, groups and activities stored as sent (`<entity>/page-00001.json`, ...) with a `pull.json` "
            f"manifest. A full pull every {source.api.full_every_days} days, else only the changes and deletions "
            "since the last pull, merged into a complete drop. A night whose drop exists is not pulled again "
            "(unless `run --repull`); a pull that fails leaves no drop behind and fails only this source."
        ),
        metadata={"source_id": source.id, "base_url": public_url(source.api.url)},
        check_specs=[
            dg.AssetCheckSpec(
                PULLED_CHECK,
                asset=pull_key(source.id),
                description="The registry's API answered every page within the limits; when it did not, the "
                "source's last published roster is carried over and the run fails after the other "
                "sources are published.",
            )
        ],
    )
    def pull_asset(context: dg.AssetExecutionContext, skolon: SkolonResource):
        configured = skolon.installation().source(source.id)
        night_date = as_of(context)
        staging = skolon.settings.staging_dir
        try:
            result = pull_source(
                configured,
                night_date,
                repull=context.run.tags.get(REPULL_TAG) == "true",
                timezone=timezone,
                log=context.log.warning,
            )
        except SourceError as exc:
            write_status(staging, night_date, source.id, error=exc.problem)
            context.log.error(str(exc))
            yield dg.MaterializeResult(metadata={"status": "failed", "problem": str(exc)})
            yield dg.AssetCheckResult(
                check_name=PULLED_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=str(exc),
                metadata={"source_id": source.id, "problem": str(exc)},
            )
            return
        write_status(staging, night_date, source.id, result)
        context.log.info(f"source {source.id!r}: {result.summary()}")
        yield dg.MaterializeResult(metadata=pull_metadata(result))
        yield dg.AssetCheckResult(check_name=PULLED_CHECK, passed=True, metadata={"source_id": source.id})

    return pull_asset


def validate_key(source_id: str) -> dg.AssetKey:
    return dg.AssetKey(["validate", source_id])


def table_check_name(table: str) -> str:
    """The asset check of one canonical table, e.g. `persons_valid`."""
    return f"{table}_valid"


def build_source_assets(
    source: Source, partitions_def: dg.PartitionsDefinition, timezone: str = "Europe/Stockholm"
) -> list[dg.AssetsDefinition]:
    pulled = [build_pull_asset(source, partitions_def, timezone)] if source.api is not None else []

    @dg.asset(
        key=extract_key(source.id),
        deps=pulled,
        group_name=EXTRACT_GROUP,
        kinds={"duckdb", "json" if source.format == "ss12000" else "csv"},
        owners=OWNERS,
        tags=PII,
        code_version=sql_version(*reader_sql(source.format)),
        partitions_def=partitions_def,
        description=(
            f"Registry drop of source `{source.id}` ({source.format}): the newest drop dated on or before the "
            "night, flattened into the canonical staging tables (persons, e-mails, enrolments, duties, groups, "
            "memberships, teacher assignments ...) in the source's own staging database."
        ),
        metadata={"source_id": source.id, "format": source.format},
        check_specs=[
            dg.AssetCheckSpec(
                READABLE_CHECK,
                asset=extract_key(source.id),
                description="The drop passed the package stage (files, headers, encoding); when it fails, the "
                "source's last published roster is carried over, flagged stale, and the run fails "
                "after the other sources are published.",
            ),
            dg.AssetCheckSpec(
                DROP_FRESH_CHECK,
                asset=extract_key(source.id),
                description="The drop read is at most rules.max_drop_age_days old (default 3): an older one means "
                "the registry may have stopped exporting. The night still runs (DROP_STALE warning; "
                "`run` exits 5 unless --allow-stale); this check fails with WARN severity.",
            ),
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
                check_name=READABLE_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=extracted.message,
                metadata={"source_id": source.id, "file": extracted.file or "", "problem": extracted.message},
            )
            yield dg.AssetCheckResult(
                check_name=DROP_FRESH_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description="not checked: the source could not be read",
                metadata={"source_id": source.id},
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
        drop = Drop(source.id, extracted.drop_date, configured.rules.max_drop_age_days)
        night_ = as_of(context)
        if drop.stale(night_):
            context.log.warning(f"source {source.id}: {drop.detail(night_)} ({DROP_STALE})")
        yield dg.AssetCheckResult(
            check_name=DROP_FRESH_CHECK,
            passed=not drop.stale(night_),
            severity=dg.AssetCheckSeverity.WARN,
            description=drop.detail(night_) if drop.stale(night_) else None,
            metadata={
                "source_id": source.id,
                "drop_date": extracted.drop_date.isoformat(),
                "drop_age_days": drop.age_days(night_),
                "max_drop_age_days": drop.max_drop_age_days,
            },
        )

    @dg.asset(
        key=validate_key(source.id),
        deps=[extract_asset],
        group_name=VALIDATE_GROUP,
        kinds={"pandera", "duckdb"},
        owners=OWNERS,
        tags=PII,
        partitions_def=partitions_def,
        description=(
            f"Source `{source.id}` checked against the canonical Pandera models, lazily: every failing row "
            "becomes an INVALID_RECORD exclusion of the record that owns it (naming field and check), and the "
            "night goes on. One asset check per table lists the failure cases (ids and field names only)."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                table_check_name(table), asset=validate_key(source.id), description=f"{table} rows pass the model"
            )
            for table in CANONICAL_TABLES
        ],
        metadata={"source_id": source.id},
    )
    def validate_asset(context: dg.AssetExecutionContext, skolon: SkolonResource):
        failure = night.source_failure(skolon.settings.staging_dir, as_of(context), source.id)
        if failure is not None:
            yield dg.MaterializeResult(metadata={"status": "not validated: the source could not be read"})
            for table in CANONICAL_TABLES:
                yield dg.AssetCheckResult(
                    check_name=table_check_name(table),
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"status": "not validated: the source could not be read"},
                )
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

    return [*pulled, extract_asset, validate_asset]
