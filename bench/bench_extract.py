"""Times the SS12000 extract alone (`extract_ss12000` into a staging file, as a night runs it) and prints its peak
RSS next to DuckDB's memory limit: the check that a registry sending each entity as one huge file is read
within the limit (DuckDB spills), and the paged against the one-file shape of the same drop.

Each measurement runs in its own child process (its peak RSS is its own, sampled every 50 ms with psutil).

    python bench/bench_extract.py --persons 200000                       # paged and one-file, 3 GB limit
    python bench/bench_extract.py --one-file-memory --memory-limit 1GB   # a ~1 GB persons.json under 1 GB
    python bench/bench_extract.py --drop /path/to/drop --memory-limit 2GB

`--one-file-memory` writes (once, under --work) a one-file drop whose persons.json is about --persons-mb MB:
the generated drop's persons repeated with new ids (made-up people only), every other entity as one file too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from floor import ENTITIES, entity_files  # noqa: E402
from generate_drop import generate  # noqa: E402
from run_bench import measure_to, one_file_copy  # noqa: E402

CHILD = """
import sys, time
sys.path.insert(0, sys.argv[3])  # the checkout measured (python -c would put the working directory first)
from pathlib import Path
from skolon_pipeline import duck
from skolon_pipeline.sources.civic import PseudonymKey
from skolon_pipeline.sources.ss12000 import extract_ss12000
drop, staging = Path(sys.argv[1]), Path(sys.argv[2])
with duck.session(staging) as con:
    start = time.perf_counter()
    counts = extract_ss12000(con, "bench", drop, key=PseudonymKey.from_secret("bench key, 0123456789abcdef0123"))
    seconds = time.perf_counter() - start
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
print(f"{seconds:.2f} {limit.replace(' ', '')} {counts['persons']}")
"""


def _drop(data_dir: Path) -> Path:
    return next((data_dir / "registries" / "bench").iterdir())


def paged_drop(work: Path, persons: int) -> Path:
    data_dir = work / f"drop-{persons}"
    if not (data_dir / "sources.yaml").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        generate(data_dir, persons)
    return _drop(data_dir)


def one_file_drop(work: Path, persons: int) -> Path:
    data_dir = work / f"drop-{persons}-one-file"
    if not (data_dir / "sources.yaml").exists():
        paged_drop(work, persons)
        shutil.rmtree(data_dir, ignore_errors=True)
        one_file_copy(work / f"drop-{persons}", data_dir)
    return _drop(data_dir)


def huge_persons_drop(work: Path, persons: int, persons_mb: int) -> Path:
    """A one-file drop whose persons.json (a page object, one record a line) is about `persons_mb` MB: the
    generated persons again and again, each copy with new ids (the ids' last characters), so none repeats."""
    base = one_file_drop(work, persons)
    data_dir = work / f"drop-{persons}-persons-{persons_mb}mb"
    drop = data_dir / "registries" / "bench" / base.name
    if not (drop / "persons.json").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        drop.mkdir(parents=True)
        for entity in ENTITIES:
            if entity != "persons":
                shutil.copy(base / f"{entity}.json", drop / f"{entity}.json")
        records = [
            json.dumps(r, ensure_ascii=False)
            for page in entity_files(_drop(work / f"drop-{persons}"), "persons")
            for r in json.loads(Path(page).read_text(encoding="utf-8"))["data"]
        ]
        target, written, copy = persons_mb * 2**20, 0, 0
        with open(drop / "persons.json.part", "w", encoding="utf-8") as out:
            out.write('{"data": [')
            while written < target:
                for n, text in enumerate(records):
                    if copy:  # a person id is a UUID: its last 4 hex digits become the copy's number
                        record = json.loads(text)
                        record["id"] = f"{record['id'][:-4]}{copy:04x}"
                        text = json.dumps(record, ensure_ascii=False)
                    out.write(("" if written == 0 and n == 0 else ",\n") + text)
                    written += len(text) + 2
                copy += 1
            out.write('], "pageToken": null}')
        os.replace(drop / "persons.json.part", drop / "persons.json")
    return drop


def report(label: str, drop: Path, memory_limit: str, code: Path = REPO) -> None:
    env = {**os.environ, "SKOLON_DUCKDB_MEMORY_LIMIT": memory_limit, "PYTHONPATH": str(code)}
    files = sorted(drop.rglob("*.json"))
    largest = max(files, key=lambda f: f.stat().st_size)
    with tempfile.TemporaryDirectory(prefix="skolon-bench-extract-") as folder:
        cmd = [sys.executable, "-c", CHILD, str(drop), str(Path(folder) / "bench.duckdb"), str(code)]
        out_file = Path(folder) / "out"
        with open(out_file, "w") as out:
            env["PYTHONUNBUFFERED"] = "1"
            _wall, rss, rc = measure_to(cmd, env, out)
        output = out_file.read_text()
    mb = sum(f.stat().st_size for f in files) / 2**20
    head = (
        f"{label:>10}  {mb:7.0f} MB JSON (largest {largest.name} {largest.stat().st_size / 2**20:.0f} MB)  "
        f"limit {memory_limit}"
    )
    if rc:
        errors = [line for line in output.splitlines() if "Error" in line] or output.strip().splitlines() or ["?"]
        print(f"{head}  FAILED (peak RSS {rss:.0f} MB): {errors[-1][:300]}")
    else:
        seconds, limit, persons = output.split()[-3:]
        print(f"{head}  extract {seconds} s  peak RSS {rss:.0f} MB  ({persons} persons; DuckDB limit {limit})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "skolon-bench")
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--shapes", nargs="+", choices=("paged", "one-file"), default=["paged", "one-file"])
    parser.add_argument("--one-file-memory", action="store_true", help="a ~1 GB one-file persons.json")
    parser.add_argument("--persons-mb", type=int, default=1024)
    parser.add_argument("--drop", type=Path, help="an existing SS12000 drop folder instead")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--code", type=Path, default=REPO, help="the checkout whose skolon_pipeline runs (before/after)"
    )
    args = parser.parse_args()
    if args.drop:
        jobs = [("drop", args.drop)]
    elif args.one_file_memory:
        jobs = [("one-file", huge_persons_drop(args.work, args.persons, args.persons_mb))]
    else:
        makers = {"paged": paged_drop, "one-file": one_file_drop}
        jobs = [(shape, makers[shape](args.work, args.persons)) for shape in args.shapes]
    for _ in range(args.repeat):
        for label, drop in jobs:
            report(label, drop, args.memory_limit, args.code)


if __name__ == "__main__":
    main()
