"""Where the pipeline reads and writes, as a Dagster resource (CONTRACT §1)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from skolon_pipeline.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_EXPORT_DIR,
    DEFAULT_WAREHOUSE,
    Installation,
    Settings,
    load_installation,
)

# Every asset that opens the warehouse takes a slot in this pool; dagster.yaml limits it to one at a time,
# since a DuckDB file has a single writer.
WAREHOUSE_POOL = "duckdb_warehouse"


def env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """An EnvVar (resolved at run time, shown as such in the UI) when set, else the contract's default."""
    return dg.EnvVar(name) if name in os.environ else default


class SkolonResource(dg.ConfigurableResource):
    """The data folder with sources.yaml and the drops, the DuckDB warehouse, and the export folder."""

    data_dir: str = DEFAULT_DATA_DIR
    warehouse: str = DEFAULT_WAREHOUSE
    export_dir: str = DEFAULT_EXPORT_DIR

    @classmethod
    def from_env(cls) -> SkolonResource:
        return cls(
            data_dir=env_or_default("SKOLON_DATA_DIR", DEFAULT_DATA_DIR),
            warehouse=env_or_default("SKOLON_WAREHOUSE", DEFAULT_WAREHOUSE),
            export_dir=env_or_default("SKOLON_EXPORT_DIR", DEFAULT_EXPORT_DIR),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SkolonResource:
        return cls(
            data_dir=str(settings.data_dir), warehouse=str(settings.warehouse), export_dir=str(settings.export_dir)
        )

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=Path(self.data_dir), warehouse=Path(self.warehouse), export_dir=Path(self.export_dir))

    def installation(self) -> Installation:
        return load_installation(Path(self.data_dir))
