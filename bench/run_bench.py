"""Times `skolon-pipeline run` end to end at several sizes, with DuckDB's bare scan of the same files as floor.

For each size it generates a drop (bench/generate_drop.py, cached under --work), runs the nightly job on a
fresh warehouse in a child process, and samples the resident memory of the whole process tree every 50 ms.

    python bench/run_bench.py                      # 50 000, 200 000 and 800 000 persons
    python bench/run_bench.py --sizes 50000 200000 --work /tmp/skolon-bench
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from generate_drop import NIGHT, generate  # noqa: E402

# The least any reader must do: read every file and parse it as JSON once (counting the records).
FLOOR_SQL = """
SELECT sum(json_array_length(content, '$.data')) FROM read_text(['{drop}/persons/*.json', '{drop}/groups/*.json',
                                                              '{drop}/activities/*.json', '{drop}/duties/*.json'])
"""


def measure(cmd: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) of the process tree, exit code."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    output = proc.stdout.read().decode(errors="replace")
    if proc.returncode:
        print(output, file=sys.stderr)
    return wall, peak / 2**20, proc.returncode


def bench_size(persons: int, work: Path) -> dict:
    data_dir = work / f"drop-{persons}"
    if not (data_dir / "sources.yaml").exists():
        generate(data_dir, persons)
    drop = next((data_dir / "registries" / "bench").iterdir())
    size_mb = sum(f.stat().st_size for f in drop.rglob("*.json")) / 2**20
    out = work / f"out-{persons}"
    shutil.rmtree(out, ignore_errors=True)
    home = out / "dagster_home"  # a throw-away instance, read afterwards for the steps' durations
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    wall, rss, rc = measure(
        [sys.executable, "-m", "skolon_pipeline.cli", "run", "--as-of", NIGHT, "--data-dir", str(data_dir),
         "--warehouse", str(out / "warehouse.duckdb"), "--export-dir", str(out / "exports")],
        env,
    )
    floor_wall, floor_rss, _ = measure([sys.executable, "-c", f"import duckdb; duckdb.sql({FLOOR_SQL.format(drop=drop)!r}).fetchall()"])
    return {"persons": persons, "json_mb": size_mb, "wall": wall, "rss": rss, "ok": rc == 0,
            "floor_wall": floor_wall, "floor_rss": floor_rss, "steps": step_seconds(home)}


def step_seconds(home: Path) -> dict[str, float]:
    """Seconds per step of the run, from the instance's own step statistics."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return {}
        return {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(runs[0].run_id)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 800_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/skolon-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = [bench_size(n, args.work) for n in args.sizes]
    print(f"\nmachine: {platform.machine()}, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GB RAM, Python {platform.python_version()}\n")
    print("| persons | JSON MB | run wall s | run peak RSS MB | DuckDB scan floor s | floor RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        status = "" if r["ok"] else " (FAILED)"
        print(f"| {r['persons']:,} | {r['json_mb']:.0f} | {r['wall']:.1f}{status} | {r['rss']:.0f} | "
              f"{r['floor_wall']:.1f} | {r['floor_rss']:.0f} |")
    steps = sorted({k for r in rows for k in r["steps"]}, key=lambda k: min(
        (list(r["steps"]).index(k) for r in rows if k in r["steps"]), default=0))
    if steps:
        print("\nseconds per step (Dagster's step statistics; the rest of the wall time is start-up and the summary):\n")
        print("| persons | " + " | ".join(steps) + " |")
        print("|---:|" + "---:|" * len(steps))
        for r in rows:
            print(f"| {r['persons']:,} | " + " | ".join(f"{r['steps'].get(k, 0):.1f}" for k in steps) + " |")
    if len(rows) >= 2:
        base = next((r for r in rows if r["persons"] == 200_000), rows[0])
        for r in rows:
            if r["persons"] > base["persons"]:
                ratio = r["wall"] / base["wall"]
                print(f"\n{r['persons']:,} / {base['persons']:,} persons: {ratio:.2f}x the time "
                      f"for {r['persons'] / base['persons']:.0f}x the size")


if __name__ == "__main__":
    main()
