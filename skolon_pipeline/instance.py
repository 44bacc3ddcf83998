"""The one Dagster instance the CLI and `dagster dev` share.

`$DAGSTER_HOME` when it is set; otherwise `<SKOLON_DATA_DIR>/dagster_home` (so `data/dagster_home` for the demo),
created owner-only with the shipped `dagster.yaml` (the `duckdb_warehouse` pool limited to one step at a time).
A night run from the command line is then in the UI's run list, with its checks, metadata and partition.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from skolon_pipeline.files import owner_only, private_dir, private_file

DAGSTER_HOME_ENV = "DAGSTER_HOME"
HOME_FOLDER = "dagster_home"  # inside the data directory when DAGSTER_HOME is not set
SHIPPED_INSTANCE_YAML = Path(__file__).with_name("dagster.yaml")


def dagster_home(data_dir: Path) -> Path:
    """Where the instance lives: `$DAGSTER_HOME`, else `<data_dir>/dagster_home`."""
    env = os.environ.get(DAGSTER_HOME_ENV, "").strip()
    return Path(env).absolute() if env else (Path(data_dir) / HOME_FOLDER).absolute()


def prepare_home(home: Path) -> Path:
    """Creates the folder (0700) and, when it has no `dagster.yaml`, writes the shipped one (0600): without the
    pool limit two steps could open the single-writer warehouse at once. An existing `dagster.yaml` is kept."""
    private_dir(home, owned=not home.exists())
    config = home / "dagster.yaml"
    if not config.exists():
        with owner_only():
            shutil.copyfile(SHIPPED_INSTANCE_YAML, config)
        private_file(config)
    return home


def open_instance(data_dir: Path) -> dg.DagsterInstance:
    """The shared instance, ready to use (its folder and configuration created on first use)."""
    return dg.DagsterInstance.from_config(str(prepare_home(dagster_home(data_dir))))
