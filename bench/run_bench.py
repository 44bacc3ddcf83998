"""Times `skolon-pipeline run` end to end at several sizes against an honest floor, in one run.

For each size it generates a drop (bench/generate_drop.py, cached under --work) in two shapes of the same data:
paged (every entity a folder of page files, as a registry's API hands them out) and one file per entity (what a
dump script or a small registry writes). It runs the nightly job on a fresh warehouse in a child process for
each, sampling the resident memory of the whole process tree every 50 ms, and measures two floors in a child
process on the same files:

* **floor** (bench/floor.py): DuckDB reads every record into typed tables once (persons with e-mails and
  enrolments, groups with memberships, duties, activities) - what no reader can avoid;
* **scan**: DuckDB only reads and parses every file once (json_array_length), without materialising records.

It prints every step's seconds (Dagster's step statistics) and CPU seconds (the process tree's, sampled), the
night's CPU time against what two cores could do with it (the least ratio that much work allows), and the
ratios the performance issue sets targets for: the night over the floor (<= 3x at 200 000), one-file over paged
(<= 1.2x), 800 000 over 200 000 (<= 4.2x), and the absolute ones: peak RSS at 200 000 (<= 2 GB), 2 million
persons (<= 5 minutes, <= 4 GB).
Absolute times on shared machines drift by 40 % from run to run, and within a run from minute to minute: each
night runs between two floors and its ratio is to their mean; with --rounds N each size and shape runs N such
nights and the median is reported.

    python bench/run_bench.py                      # 50 000, 200 000 and 800 000 persons
    python bench/run_bench.py --sizes 50000 200000 --work /tmp/skolon-bench
    python bench/run_bench.py --sizes 200000 --shapes paged
    python bench/run_bench.py --sizes 200000 --shapes paged --rounds 3   # the median of three bracketed ratios
    python bench/run_bench.py --sizes 200000 800000 --one-file-sizes 200000
    python bench/run_bench.py --sizes 200000 --shapes paged --next-night   # and the night after, as every night is

The timed nights are first nights (a fresh warehouse and Dagster instance). With --next-night each size and shape
also runs the following night on the warehouse and instance of its last first night, from the same drop: what
every night after the first does (compare with the last night published, record the change set and the
history intervals, copy the warehouse); it is reported beside the first night, without a floor of its own.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from floor import ENTITIES, entity_files  # noqa: E402
from generate_drop import NIGHT, generate  # noqa: E402

SHAPES = ("paged", "one-file")
# The least any reader must do to see the data: read every file and parse it as JSON once (counting records).
SCAN_SQL = "SELECT sum(json_array_length(content, '$.data')) FROM read_text({files!r})"
FLOOR_CODE = "import sys; sys.path.insert(0, {bench!r}); from floor import read_floor; from pathlib import Path; read_floor(Path({drop!r}))"


def measure_to(cmd: list[str], env: dict | None, out, cpu: list | None = None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) of the process tree (sampled every 50 ms), exit code; the output goes to `out`.
    With `cpu`, each sample's (epoch seconds, CPU seconds the tree has used so far) is appended to it."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    peak = 0
    # Each process's CPU seconds when last seen: a child that has exited (the compute logs' `tail`, a short
    # helper) still counts with what it had used by then.
    last_cpu: dict[int, float] = {}
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            if cpu is not None:
                for p in tree:
                    times = p.cpu_times()
                    last_cpu[p.pid] = times.user + times.system
                cpu.append((time.time(), sum(last_cpu.values())))
        except psutil.Error:
            pass
        time.sleep(0.05)
    return time.perf_counter() - start, peak / 2**20, proc.returncode


def measure(cmd: list[str], env: dict | None = None, cpu: list | None = None) -> tuple[float, float, int]:
    """measure_to, with the output printed when the command fails."""
    with tempfile.TemporaryFile() as out:
        wall, rss, rc = measure_to(cmd, env, out, cpu)
        if rc:
            out.seek(0)
            print(out.read().decode(errors="replace"), file=sys.stderr)
    return wall, rss, rc


def cpu_between(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """CPU seconds used between two moments, from (epoch seconds, CPU seconds so far) samples in time order:
    the last sample at or before each moment (the first sample before the first)."""
    if not samples:
        return 0.0
    times = [t for t, _ in samples]

    def at(moment: float) -> float:
        i = bisect.bisect_right(times, moment) - 1
        return samples[max(i, 0)][1]

    return max(at(end) - at(start), 0.0)


def one_file_copy(paged_dir: Path, data_dir: Path) -> None:
    """The same drop with every entity as one `<entity>.json` page object, written page by page (streamed)."""
    paged = next((paged_dir / "registries" / "bench").iterdir())
    drop = data_dir / "registries" / "bench" / paged.name
    drop.mkdir(parents=True)
    shutil.copy(paged_dir / "sources.yaml", data_dir / "sources.yaml")
    for entity in ENTITIES:
        with open(drop / f"{entity}.json", "w", encoding="utf-8") as out:
            out.write('{"data": [')
            first = True
            for page in entity_files(paged, entity):
                for record in json.loads(Path(page).read_text(encoding="utf-8"))["data"]:
                    out.write(("" if first else ",\n") + json.dumps(record, ensure_ascii=False))
                    first = False
            out.write('], "pageToken": null}')


def bench_size(persons: int, work: Path, shape: str, rounds: int = 1, next_night: bool = False) -> dict:
    data_dir = work / f"drop-{persons}" if shape == "paged" else work / f"drop-{persons}-{shape}"
    if not (data_dir / "sources.yaml").exists():
        if shape == "paged":
            generate(data_dir, persons)
        else:
            bench_size_drop = work / f"drop-{persons}"
            if not (bench_size_drop / "sources.yaml").exists():
                generate(bench_size_drop, persons)
            shutil.rmtree(data_dir, ignore_errors=True)
            one_file_copy(bench_size_drop, data_dir)
    drop = next((data_dir / "registries" / "bench").iterdir())
    size_mb = sum(f.stat().st_size for f in drop.rglob("*.json")) / 2**20
    files = [f for e in ENTITIES if e != "organisations" for f in entity_files(drop, e)]
    scan_wall, _, _ = measure(
        [sys.executable, "-c", f"import duckdb; duckdb.sql({SCAN_SQL.format(files=files)!r}).fetchall()"]
    )

    def floor() -> tuple[float, float]:
        wall, rss, rc = measure(
            [sys.executable, "-c", FLOOR_CODE.format(bench=str(Path(__file__).parent), drop=str(drop))]
        )
        return (wall if rc == 0 else float("nan")), rss

    # The machine's speed drifts from minute to minute: each night is bracketed by a floor before and after it,
    # and its ratio is to their mean; over several rounds the median ratio is reported.
    floors = [floor()]
    nights = []
    for _ in range(rounds):
        nights.append(_night(data_dir, work / f"out-{persons}-{shape}"))
        floors.append(floor())
    ratios = bracketed_ratios([n["wall"] for n in nights], [f for f, _ in floors])
    median = sorted(range(rounds), key=lambda i: nights[i]["wall"])[rounds // 2]  # the median night's run
    following = _night(data_dir, work / f"out-{persons}-{shape}", NEXT_NIGHT, fresh=False) if next_night else None
    return {
        "next": following,
        "persons": persons,
        "shape": shape,
        "json_mb": size_mb,
        **nights[median],
        "night_floor": (floors[median][0] + floors[median + 1][0]) / 2,  # the floors around the median night
        "ok": all(n["ok"] for n in nights),
        "rss": max(n["rss"] for n in nights),
        "walls": [n["wall"] for n in nights],
        "floor_wall": statistics.median(f for f, _ in floors),
        "floors": [f for f, _ in floors],
        "floor_rss": max(r for _, r in floors),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "scan_wall": scan_wall,
    }


def bracketed_ratios(nights: list[float], floors: list[float]) -> list[float]:
    """Each night's seconds over the mean of the floors measured just before and just after it (one more floor
    than nights, alternating: floor, night, floor, night, floor)."""
    assert len(floors) == len(nights) + 1
    return [night / ((floors[i] + floors[i + 1]) / 2) for i, night in enumerate(nights)]


# The night after the benchmark's night, from the same drop (one day old: not stale).
NEXT_NIGHT = (dt.date.fromisoformat(NIGHT) + dt.timedelta(days=1)).isoformat()


def _night(data_dir: Path, out: Path, night: str = NIGHT, fresh: bool = True) -> dict:
    """One night on a fresh warehouse and Dagster instance (or, not `fresh`, on those `out` holds from the night
    before): wall seconds, peak RSS, steps."""
    home = out / "dagster_home"  # a throw-away instance, read afterwards for the steps' durations
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
        home.mkdir(parents=True)
        shutil.copy(REPO / "skolon_pipeline" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    cpu: list[tuple[float, float]] = []
    wall, rss, rc = measure(
        [
            sys.executable,
            "-m",
            "skolon_pipeline.cli",
            "run",
            "--as-of",
            night,
            "--data-dir",
            str(data_dir),
            "--warehouse",
            str(out / "warehouse.duckdb"),
            "--export-dir",
            str(out / "exports"),
        ],
        env,
        cpu,
    )
    spans = step_spans(home)
    return {
        "wall": wall,
        "rss": rss,
        "ok": rc == 0,
        "steps": {k: end - start for k, (start, end) in spans.items()},
        "cpu": cpu[-1][1] if cpu else 0.0,
        "step_cpu": {k: cpu_between(cpu, start, end) for k, (start, end) in spans.items()},
    }


def _values(values: list[float]) -> str:
    """'25.0', or with several rounds their median and every value: '25.0 (24.1, 25.0, 27.9)'."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({', '.join(f'{v:.1f}' for v in values)})"


def step_spans(home: Path) -> dict[str, tuple[float, float]]:
    """(start, end) epoch seconds of each step of the run, from the instance's own step statistics."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return {}
        return {
            s.step_key: (s.start_time or 0, s.end_time or s.start_time or 0)
            for s in instance.get_run_step_stats(runs[0].run_id)
        }


def cpu_line(r: dict) -> str:
    """What the night's CPU time says about the ratio: on both cores all the time, the night could take no less
    than its CPU seconds over two; that bound over the floor is the least ratio this much work allows."""
    cores = psutil.cpu_count() or 1
    bound = r["cpu"] / cores
    return (
        f"{r['persons']:,} {r['shape']}: night CPU {r['cpu']:.1f} s in {r['wall']:.1f} s ({r['cpu'] / r['wall']:.2f} "
        f"of {cores} cores); on all {cores} cores all the time {bound:.1f} s, {bound / r['night_floor']:.2f}x the floor"
    )


def ratio_lines(rows: list[dict]) -> list[str]:
    """The targets of the performance issue, as ratios measured in this run."""
    lines = []
    for r in rows:
        target = " (target <= 3x at 200 000)" if r["persons"] == 200_000 else ""
        each = f" (median of {', '.join(f'{x:.2f}' for x in r['ratios'])})" if len(r["ratios"]) > 1 else ""
        lines.append(f"{r['persons']:,} {r['shape']}: night / floor = {r['ratio']:.2f}x{each}{target}")
    by_key = {(r["persons"], r["shape"]): r for r in rows}
    for (persons, shape), r in by_key.items():
        paged = by_key.get((persons, "paged"))
        if shape != "paged" and paged:
            lines.append(f"{persons:,}: {shape} / paged = {r['wall'] / paged['wall']:.2f}x (target <= 1.2x)")
    paged_rows = [r for r in rows if r["shape"] == "paged"]
    base = next((r for r in paged_rows if r["persons"] == 200_000), None)
    for r in paged_rows:
        if base and r["persons"] > base["persons"]:
            target = " (target <= 4.2x)" if r["persons"] == 800_000 else ""
            lines.append(
                f"{r['persons']:,} / {base['persons']:,} persons: {r['wall'] / base['wall']:.2f}x the time "
                f"for {r['persons'] / base['persons']:.0f}x the size{target}"
            )
    lines.extend(absolute_lines(rows))
    return lines


# The absolute targets, on a quiet 2-core machine: (persons, shape) -> (seconds, peak RSS MB); None: no limit.
ABSOLUTE_TARGETS = {(200_000, "paged"): (None, 2048), (2_000_000, "paged"): (300, 4096)}


def absolute_lines(rows: list[dict]) -> list[str]:
    """The time and memory targets set in seconds and megabytes, each with what this run measured."""
    lines = []
    for r in rows:
        target = ABSOLUTE_TARGETS.get((r["persons"], r["shape"]))
        if target is None:
            continue
        seconds, rss = target
        if seconds is not None:
            met = "met" if r["ok"] and r["wall"] <= seconds else "NOT met"
            lines.append(f"{r['persons']:,} {r['shape']}: night {r['wall']:.1f} s (target <= {seconds} s: {met})")
        met = "met" if r["ok"] and r["rss"] <= rss else "NOT met"
        lines.append(f"{r['persons']:,} {r['shape']}: peak RSS {r['rss']:,.0f} MB (target <= {rss:,} MB: {met})")
    return lines


def step_table(rows: list[dict], steps: list[str], figure: str) -> list[str]:
    """A Markdown table of one figure per step (`steps`: seconds, `step_cpu`: CPU seconds), a row per night."""
    lines = ["| persons | shape | " + " | ".join(steps) + " |", "|---:|---|" + "---:|" * len(steps)]
    for r in rows:
        cells = " | ".join(f"{r[figure].get(k, 0):.1f}" for k in steps)
        lines.append(f"| {r['persons']:,} | {r['shape']} | {cells} |")
    return lines


def next_night_lines(rows: list[dict]) -> list[str]:
    """The nights after the first (--next-night): seconds, peak RSS and the steps, beside the first night's."""
    lines = []
    for r in rows:
        following = r.get("next")
        if following is None:
            continue
        status = "" if following["ok"] else " (FAILED)"
        steps = ", ".join(f"{k} {v:.1f}" for k, v in following["steps"].items())
        lines.append(
            f"{r['persons']:,} {r['shape']}: the next night {following['wall']:.1f} s{status} "
            f"({following['wall'] / r['wall']:.2f}x the first night), peak RSS {following['rss']:,.0f} MB; {steps}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 800_000])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument(
        "--one-file-sizes",
        type=int,
        nargs="*",
        help="the sizes that also run as one file per entity (default: all of --sizes); e.g. only 200000 "
        "beside a paged 800000",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/skolon-bench"))
    parser.add_argument(
        "--next-night",
        action="store_true",
        help="also time the night after each size's last first night, on its warehouse (every later night's work)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="nights per size and shape, each between two floors; the median night and ratio are reported",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    one_file = set(args.sizes if args.one_file_sizes is None else args.one_file_sizes)
    load_before = os.getloadavg()
    rows = [
        bench_size(n, args.work, shape, args.rounds, args.next_night)
        for n in args.sizes
        for shape in args.shapes
        if shape == "paged" or n in one_file
    ]
    load_after = os.getloadavg()
    print(
        f"\nmachine: {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB RAM, Python {platform.python_version()}; "
        f"load average (1, 5, 15 min) {', '.join(f'{x:.1f}' for x in load_before)} before, "
        f"{', '.join(f'{x:.1f}' for x in load_after)} after\n"
    )
    print("| persons | shape | JSON MB | night s | night peak RSS MB | floor s | floor RSS MB | scan s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        status = "" if r["ok"] else " (FAILED)"
        print(
            f"| {r['persons']:,} | {r['shape']} | {r['json_mb']:.0f} | {_values(r['walls'])}{status} | {r['rss']:.0f} | "
            f"{_values(r['floors'])} | {r['floor_rss']:.0f} | {r['scan_wall']:.1f} |"
        )
    steps = sorted(
        {k for r in rows for k in r["steps"]},
        key=lambda k: min((list(r["steps"]).index(k) for r in rows if k in r["steps"]), default=0),
    )
    if steps:
        print(
            "\nseconds per step (Dagster's step statistics; the rest of the wall time is start-up and the summary):\n"
        )
        for line in step_table(rows, steps, "steps"):
            print(line)
        print("\nCPU seconds per step (the process tree's, sampled every 50 ms; the median night):\n")
        for line in step_table(rows, steps, "step_cpu"):
            print(line)
    print()
    for line in ratio_lines(rows):
        print(line)
    for r in rows:
        print(cpu_line(r))
    for line in next_night_lines(rows):
        print(line)


if __name__ == "__main__":
    main()
