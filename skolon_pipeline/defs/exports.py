"""The exports stage: the validation files of every school authority, after the night is published."""

import dagster as dg

from skolon_pipeline.defs.meta import EXPORTS_SQL, OWNERS, PII, sql_version
from skolon_pipeline.defs.partitions import as_of
from skolon_pipeline.defs.resources import WAREHOUSE_POOL, SkolonResource
from skolon_pipeline.defs.roster import PUBLISHED
from skolon_pipeline.exports.validation_file import COUNT_COLUMNS, write_validation_files

EXPORTS_GROUP = "exports"
VALIDATION_FILES_KEY = dg.AssetKey(["exports", "validation_files"])

_SCHOOL_TABLE = dg.TableSchema(
    columns=[
        dg.TableColumn("authority", "string"),
        dg.TableColumn("school", "string"),
        dg.TableColumn("school_unit_code", "string"),
        dg.TableColumn("school_id", "string"),
        *[dg.TableColumn(c, "int") for c in COUNT_COLUMNS],
    ]
)


def build_export_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=VALIDATION_FILES_KEY,
        deps=[key for key, _, _ in PUBLISHED.values()],
        group_name=EXPORTS_GROUP,
        kinds={"excel", "csv"},
        owners=OWNERS,
        tags=PII,
        code_version=sql_version(*EXPORTS_SQL),
        partitions_def=partitions_def,
        pool=WAREHOUSE_POOL,
    )
    def validation_files(context: dg.AssetExecutionContext, skolon: SkolonResource) -> dg.MaterializeResult:
        """One validation file per school authority (huvudman) for the night:
        `<export dir>/<night>/<authority>/valideringsfil_<authority>_<night>.xlsx`, written for admins in
        Swedish (Sammanfattning with the night and each source's drop date, Användare, Grupper, Medlemskap,
        and Ej synkade: every held-back person or group once, what is wrong, what to fix in the registry and
        when it will appear by itself), and the CSV files for machines beside it. Protected identities are
        masked and never placed in a group; no civic number is ever written. Metadata: paths and per-school
        counts only."""
        settings = skolon.settings
        night, files = write_validation_files(settings.warehouse, settings.export_dir, as_of(context))
        records = [
            dg.TableRecord({"authority": f.authority.slug, **{k: "" if v is None else v for k, v in school.items()}})
            for f in files
            for school in f.schools
        ]
        return dg.MaterializeResult(
            metadata={
                "night": night.isoformat(),
                "export_dir": dg.MetadataValue.path(str(settings.export_dir / night.isoformat())),
                "authorities": len(files),
                **{f"file/{f.authority.slug}": dg.MetadataValue.path(str(f.xlsx)) for f in files},
                "schools": dg.MetadataValue.table(records, schema=_SCHOOL_TABLE),
                **{f"rows/{sheet}": sum(f.rows[sheet] for f in files) for sheet in (files[0].rows if files else {})},
            }
        )

    return [validation_files]
