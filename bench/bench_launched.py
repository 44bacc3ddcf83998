"""A night launched as the schedule, the UI and `dagster job launch` launch it, against the CLI's, in one run.

The production path: the schedule's tick (or the UI's *Materialize*, or `dagster job launch`) hands the run to the
run launcher, which starts a process that loads the code location and executes the nightly job with the executor
configured on the job itself (`skolon_pipeline.defs.schedules.nightly_execution`): in this process for one source,
forkserver workers with the code preloaded for several. `dagster job execute` is that process without a daemon, so
its wall time is the launched run's. Each run starts on a fresh warehouse and a fresh Dagster instance; modes
alternate so that load on a shared machine falls on all of them alike. Printed: the median wall time per mode and
the ratio the operations issue sets a target for (a launched night <= 1.3x the CLI's).

    python bench/bench_launched.py                      # the demo night, one source, 3 rounds
    python bench/bench_launched.py --sources 2 --rounds 5
    python bench/bench_launched.py --with-spawn         # also the former default (a new process per step)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from skolon_pipeline.defs.schedules import NIGHTLY_JOB  # noqa: E402
from skolon_pipeline.demo import DEMO_NIGHT, generate_demo  # noqa: E402


def former_default_defs():
    """The nightly job as it ran before its executor was configured on the job: Dagster's default executor, a new
    Python process per step (spawn), each importing Dagster and the pipeline (`--with-spawn`)."""
    import dagster as dg

    from skolon_pipeline.definitions import build_defs
    from skolon_pipeline.defs.schedules import build_nightly_job

    defs = build_defs()
    return dg.Definitions(
        assets=defs.assets,
        jobs=[build_nightly_job(dg.multi_or_in_process_executor)],
        resources=defs.resources,
        executor=dg.multi_or_in_process_executor,
    )


def demo_data(work: Path, sources: int) -> Path:
    """The demo registry; with several sources, copies of its drop under other source ids (the same ids: one user
    per person, each source's memberships kept)."""
    data = work / f"data-{sources}"
    if (data / "sources.yaml").exists():
        return data
    generate_demo(data)
    config = yaml.safe_load((data / "sources.yaml").read_text())
    first = config["sources"][0]
    for n in range(1, sources):
        copy = {**first, "id": f"{first['id']}-{n}", "path": f"{first['path']}-{n}"}
        shutil.copytree(data / first["path"], data / copy["path"])
        config["sources"].append(copy)
    (data / "sources.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return data


def command(mode: str, data: Path, out: Path) -> list[str]:
    if mode == "cli":
        return [
            sys.executable,
            "-m",
            "skolon_pipeline.cli",
            "run",
            "--as-of",
            DEMO_NIGHT.isoformat(),
            "--data-dir",
            str(data),
            "--warehouse",
            str(out / "warehouse.duckdb"),
            "--export-dir",
            str(out / "exports"),
        ]
    target = (
        ["-f", str(Path(__file__).resolve()), "-a", "former_default_defs"]
        if mode == "spawn"
        else ["-m", "skolon_pipeline.definitions", "-a", "defs"]
    )
    return [
        sys.executable,
        "-m",
        "dagster",
        "job",
        "execute",
        *target,
        "-j",
        NIGHTLY_JOB,
        "--tags",
        json.dumps({"dagster/partition": DEMO_NIGHT.isoformat()}),
    ]


def timed_run(mode: str, data: Path, work: Path) -> float:
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=work))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(out / "dagster_home"),
        "SKOLON_DATA_DIR": str(data),
        "SKOLON_WAREHOUSE": str(out / "warehouse.duckdb"),
        "SKOLON_EXPORT_DIR": str(out / "exports"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    (out / "dagster_home").mkdir(mode=0o700)
    shutil.copy(REPO / "skolon_pipeline" / "dagster.yaml", out / "dagster_home" / "dagster.yaml")
    start = time.perf_counter()
    proc = subprocess.run(command(mode, data, out), env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{mode} run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=1, help="copies of the demo drop as separate sources")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--with-spawn", action="store_true", help="also time the former default executor")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "skolon-bench-launched")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = demo_data(args.work, args.sources)
    modes = ["cli", "launched"] + (["spawn"] if args.with_spawn else [])
    walls: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            walls[mode].append(timed_run(mode, data, args.work))
            print(f"{mode}: {walls[mode][-1]:.1f} s", flush=True)
    labels = {
        "cli": "skolon-pipeline run",
        "launched": "dagster job execute (the job's own executor)",
        "spawn": "dagster job execute, former default (spawn per step)",
    }
    print(f"\nthe demo night {DEMO_NIGHT}, {args.sources} source(s), {args.rounds} rounds, {os.cpu_count()} cores\n")
    print("| how | median s | runs s |")
    print("|---|---:|---|")
    for mode in modes:
        print(
            f"| {labels[mode]} | {statistics.median(walls[mode]):.1f} | {', '.join(f'{w:.1f}' for w in walls[mode])} |"
        )
    cli = statistics.median(walls["cli"])
    print(f"\nlaunched / CLI = {statistics.median(walls['launched']) / cli:.2f}x (target <= 1.3x)")
    if args.with_spawn:
        print(f"former default / CLI = {statistics.median(walls['spawn']) / cli:.2f}x")


if __name__ == "__main__":
    main()
