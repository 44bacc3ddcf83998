"""What the published read-only warehouse costs (publish/snapshot.py): every writing step copies the published
file, writes the copy and renames it over the original. Measured on the synthetic 200 000-person night
(skolon_pipeline_tests/synthetic.py), against the step it wraps.

    PYTHONPATH=. python3 bench/bench_snapshot.py [PERSONS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from skolon_pipeline.publish import snapshot, warehouse
from skolon_pipeline_tests import synthetic


def main(persons: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        wh = Path(tmp) / "warehouse.duckdb"
        started = time.perf_counter()
        synthetic.build(wh, persons)
        build = time.perf_counter() - started
        size = wh.stat().st_size
        times = []
        for _ in range(3):
            started = time.perf_counter()
            with snapshot.rewrite(wh) as writer:
                warehouse.ensure_schema(writer.con)  # what every writing step does first
            times.append(time.perf_counter() - started)
        started = time.perf_counter()
        with snapshot.connect_published(wh) as con:
            users = con.execute("SELECT count(*) FROM roster.users").fetchone()[0]
        opened = time.perf_counter() - started
    print(f"persons={persons} users={users} warehouse={size / 1e6:.1f} MB (built in {build:.1f} s)")
    print(
        f"rewrite (copy + ensure_schema + checkpoint + fsync + rename): best {min(times):.2f} s, "
        f"median {sorted(times)[1]:.2f} s  ({size / 1e6 / min(times):.0f} MB/s)"
    )
    print(f"connect_published + count: {opened:.3f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
