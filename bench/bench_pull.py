"""Times a pull of a whole registry from the local SS12000 test server, and the pull's peak memory.

The server (skolon_pipeline/testing/ss12000_server.py, the one the tests use) runs in a child process on
127.0.0.1 with the benchmark's drop (bench/generate_drop.py) loaded; this process pulls it through the real
client (OAuth2 client credentials, pageToken paging, pages of --page-size) into a drop folder, as
`skolon-pipeline pull` does. The issue's target: at least 5 000 persons per second end to end at 200 000
persons with pages of 1 000, and peak memory bounded by a few pages (pages are streamed to disk).

    python bench/bench_pull.py --persons 200000 --page-size 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from generate_drop import generate

SECRET = "bench-secret-not-real"


def _serve(drop: str, ready, stop) -> None:
    from skolon_pipeline.testing.ss12000_server import Registry, serving

    registry = Registry(client_id="bench", client_secret=SECRET).load_drop(Path(drop))
    with serving(registry) as url:
        ready.put(url)
        stop.wait(3600)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/skolon-bench"))
    args = parser.parse_args()

    from skolon_pipeline.config import ApiConfig, Rules, Source
    from skolon_pipeline.pull.drop import pull_source

    data_dir = args.work / f"drop-{args.persons}"
    if not (data_dir / "sources.yaml").exists():
        generate(data_dir, args.persons)
    drop = next((data_dir / "registries" / "bench").iterdir())

    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(str(drop), ready, stop), daemon=True)
    server.start()
    try:
        url = ready.get(timeout=600)
        root = args.work / f"pulled-{args.persons}"
        shutil.rmtree(root, ignore_errors=True)
        api = ApiConfig(
            url=url,
            token_url=f"{url}/token",
            client_id="bench",
            client_secret_env="BENCH_SECRET",
            page_size=args.page_size,
        )
        source = Source("bench", "ss12000", root, Rules(), api=api)
        night = dt.date.fromisoformat(drop.name)
        baseline = _rss_mb()
        start = time.perf_counter()
        result = pull_source(source, night, today=night, environ={"BENCH_SECRET": SECRET})
        wall = time.perf_counter() - start
        peak = _rss_mb()
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()
    persons = result.counts.get("persons", 0)
    page_mb = max(f.stat().st_size for f in (root / night.isoformat()).rglob("page-*.json")) / 2**20
    print(
        f"pulled {persons:,} persons ({sum(result.counts.values()):,} records, {sum(result.pages.values()):,} pages of "
        f"{args.page_size}) in {wall:.1f} s: {persons / wall:,.0f} persons/s (target >= 5 000)"
    )
    print(
        f"pull process peak RSS {peak:.0f} MB (before the pull {baseline:.0f} MB; largest page file {page_mb:.1f} MB)"
    )


if __name__ == "__main__":
    main()
