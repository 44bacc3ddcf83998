"""Times what an admin waits for on the synthetic 200 000-person warehouse (skolon_pipeline_tests/synthetic.py):
`explain` for an id, an address, a typed address, a rare and a common name and no match, and the validation
files of the whole authority (workbook and CSV files).

    python bench/bench_admin.py                     # 200 000 persons
    python bench/bench_admin.py --persons 50000 --work /tmp/skolon-admin-bench

Prints one line per measurement (median of --repeat runs for explain, one run for the export)."""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skolon_pipeline.explain import find  # noqa: E402
from skolon_pipeline.exports.validation_file import write_validation_files  # noqa: E402
from skolon_pipeline_tests import synthetic  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/skolon-admin-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    wh = args.work / f"synthetic-{args.persons}.duckdb"
    if not wh.exists():
        started = time.perf_counter()
        synthetic.build(wh, persons=args.persons)
        print(f"built {wh} in {time.perf_counter() - started:.1f} s")
    queries = [
        synthetic.UNIQUE_ID,
        "p123457.jakobsson@skola.test",
        "p123457.jakobsson@@skola.test",
        " ".join(synthetic.UNIQUE_NAME),
        "bjork",
        synthetic.EXCLUDED_ID,
        "nobody at all",
    ]
    for query in queries:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            answer = find(wh, query)
            times.append(time.perf_counter() - started)
        print(
            f"explain {query!r}: {statistics.median(times) * 1000:.0f} ms (median of {args.repeat}; "
            f"{len(answer.found)} shown, {answer.more} more)"
        )
    out = args.work / "exports"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    _, files = write_validation_files(wh, out)
    elapsed = time.perf_counter() - started
    rows = {sheet: sum(f.rows[sheet] for f in files) for sheet in files[0].rows}
    print(f"export: {elapsed:.1f} s for {len(files)} authority file(s), rows {rows}")


if __name__ == "__main__":
    main()
