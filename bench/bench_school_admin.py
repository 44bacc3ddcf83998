"""School Admin benchmark: page render times on the 200 000-person warehouse, and what 50 concurrent admin
sessions do to a nightly run.

1. Pages: the synthetic 200 000-person warehouse (skolon_pipeline_tests/synthetic.py: one authority, 100
   schools, 975 000 memberships), `skolon-pipeline serve` in a child process, 200 sequential requests per
   account over Översikt, Skola, Sök (a name and an id), Person and Grupp, for a school admin and for the
   organisation admin of all 200 000; p50/p95/max per page and overall. The first request of an account
   (its scoped copy being built) is timed on its own.
2. Beside a run: a generated registry drop (bench/generate_drop.py, --run-persons), three nights run with
   `skolon-pipeline run` while the server serves the same warehouse: the middle one with 50 sessions
   logged in and each opening a page every --think seconds; the run's wall time against the mean of the two
   without, and the pages' latency and errors meanwhile.

    python bench/bench_school_admin.py                      # both parts
    python bench/bench_school_admin.py --part pages --requests 200
    python bench/bench_school_admin.py --part run --run-persons 50000 --sessions 50 --think 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

PASSWORD = "benchmark password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skolon_pipeline.cli", *args], input=stdin, text=True,
                          capture_output=True, env=env, check=False)


class Server:
    """`skolon-pipeline serve` on 127.0.0.1, an ephemeral port, in a child process."""

    def __init__(self, data_dir: Path, warehouse: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skolon_pipeline.cli", "serve", "--port", str(self.port), "--data-dir", str(data_dir),
             "--warehouse", str(warehouse)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/login", timeout=2)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def session(url: str, username: str) -> httpx.Client:
    import re

    c = httpx.Client(base_url=url, timeout=60, follow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": username, "password": PASSWORD, "csrf": token})
    assert r.status_code == 303, (username, r.status_code)
    return c


def add_admin(data_dir: Path, warehouse: Path, username: str, *scope: str) -> None:
    r = cli("admin", "add", username, *scope, "--password-stdin", "--data-dir", str(data_dir), "--warehouse",
            str(warehouse), stdin=PASSWORD + "\n", env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(label: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (f"{label:<28} n={len(ms):>4}  p50 {statistics.median(ms):7.1f} ms  p95 {pct(ms, 95):7.1f} ms  "
            f"max {max(ms):7.1f} ms")


# ─── 1. Pages ──────────────────────────────────────────────────────────────────────────────────────────────
def bench_pages(work: Path, persons: int, requests: int) -> None:
    from skolon_pipeline_tests import synthetic

    wh = work / f"synthetic-{persons}.duckdb"
    if not wh.exists():
        started = time.perf_counter()
        synthetic.build(wh, persons=persons)
        print(f"built {wh.name} in {time.perf_counter() - started:.1f} s")
    data_dir = work / "pages-data"
    data_dir.mkdir(exist_ok=True)
    add_admin(data_dir, wh, "rektor", "--school", "school-7")
    add_admin(data_dir, wh, "it", "--authority", "authority-1")
    server = Server(data_dir, wh)
    rng = random.Random(1)
    schools = max(1, persons // 2000)
    try:
        for username, school in (("rektor", 7), ("it", None)):
            c = session(server.url, username)
            started = time.perf_counter()
            assert c.get("/").status_code == 200
            print(f"{username}: first page (the scoped copy built) {1000 * (time.perf_counter() - started):.0f} ms")
            # people of the school (school-7 has persons i with i % schools == 7)
            def person(rng=rng, school=school):
                i = (school if school is not None else rng.randrange(schools)) + schools * rng.randrange(persons // schools)
                return f"person-{i - i % 40 + 1 if i % 40 == 0 else i}"

            def school_page(rng=rng, school=school):
                return f"/schools/school-{school if school is not None else rng.randrange(schools)}"

            def group(rng=rng, school=school):
                return f"/groups/group-{school if school is not None else rng.randrange(schools)}-{rng.randrange(50)}"

            kinds = {
                "Översikt /": lambda: "/",
                "Skola /schools/<id>": school_page,
                "Sök ?q=name": lambda: "/search?q=" + rng.choice(synthetic.FAMILY).lower()[:5] + " " + rng.choice(synthetic.GIVEN).lower(),
                "Sök ?q=id": lambda: "/search?q=" + person(),
                "Person /persons/<id>": lambda: "/persons/" + person(),
                "Grupp /groups/<id>": group,
            }
            times: dict[str, list[float]] = {k: [] for k in kinds}
            names = list(kinds)
            for n in range(requests):
                kind = names[n % len(names)]
                path = kinds[kind]()
                started = time.perf_counter()
                r = c.get(path)
                times[kind].append(time.perf_counter() - started)
                assert r.status_code in (200, 404), (path, r.status_code)
            every = [t for ts in times.values() for t in ts]
            scope = f"school admin (1 school, {persons // schools} persons)" if school is not None else \
                f"organisation admin ({persons} persons)"
            print(f"{username}: {scope}, {requests} requests")
            for kind, ts in times.items():
                print("  " + summary(kind, ts))
            print("  " + summary("all pages", every))
    finally:
        server.stop()


# ─── 2. Beside a nightly run ───────────────────────────────────────────────────────────────────────────────
def bench_run(work: Path, persons: int, sessions: int, think: float) -> None:
    from generate_drop import generate

    data_dir = work / f"run-drop-{persons}"
    if not (data_dir / "sources.yaml").exists():
        generate(data_dir, persons)
    out = work / f"run-out-{persons}"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wh, exports = out / "warehouse.duckdb", out / "exports"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    nights = [dt.date(2025, 12, 15) + dt.timedelta(days=i) for i in range(4)]

    def run(night: dt.date) -> float:
        started = time.perf_counter()
        r = cli("run", "--as-of", night.isoformat(), "--data-dir", str(data_dir), "--warehouse", str(wh),
                "--export-dir", str(exports), env=env)
        elapsed = time.perf_counter() - started
        if r.returncode not in (0, 5):
            print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
            raise RuntimeError(f"night {night}: exit {r.returncode}")
        return elapsed

    print(f"night {nights[0]} (first, builds the warehouse): {run(nights[0]):.1f} s")
    import duckdb

    with duckdb.connect(str(wh), read_only=True) as con:
        schools = con.execute("SELECT school_unit_code FROM roster.schools ORDER BY 1").fetchall()
        authority = con.execute("SELECT any_value(organisation_id) FROM roster.schools").fetchone()[0]
    accounts = []
    for n, (code,) in enumerate(schools[: sessions - 1]):
        add_admin(out, wh, f"rektor{n}", "--school", code)
        accounts.append(f"rektor{n}")
    add_admin(out, wh, "it", "--authority", authority)
    accounts.append("it")
    server = Server(out, wh)
    try:
        clients = [session(server.url, accounts[i % len(accounts)]) for i in range(sessions)]
        for c in clients:  # every scope's copy built before timing
            c.get("/")
        quiet = [run(nights[1])]
        time.sleep(5)  # the copies catch up with the new night
        stop = threading.Event()
        latencies: list[float] = []
        errors: list[int] = []
        lock = threading.Lock()

        def reader(c: httpx.Client, seed: int) -> None:
            rng = random.Random(seed)
            paths = ["/", "/search?q=an", "/validation-file"]
            while not stop.is_set():
                path = rng.choice(paths)
                started = time.perf_counter()
                try:
                    status = c.get(path).status_code
                except httpx.HTTPError:
                    status = 599
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if status >= 500:
                        errors.append(status)
                stop.wait(rng.uniform(0.5, 1.5) * think)

        threads = [threading.Thread(target=reader, args=(c, i), daemon=True) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        time.sleep(think)
        loaded = run(nights[2])
        stop.set()
        for t in threads:
            t.join(timeout=120)
        time.sleep(5)
        quiet.append(run(nights[3]))
        page = clients[0].get("/").text
        shown = nights[3].isoformat() in page
    finally:
        server.stop()
    base = statistics.mean(quiet)
    print(f"nightly run ({persons} persons): without sessions {quiet[0]:.1f} s and {quiet[1]:.1f} s; with {sessions} "
          f"sessions (a page every ~{think:g} s each) {loaded:.1f} s: {100 * (loaded / base - 1):+.1f} %")
    print("  " + summary(f"pages during the run", latencies) + f", {len(errors)} errors (5xx)")
    print(f"  the latest night shown after the last run: {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("pages", "run", "both"), default="both")
    parser.add_argument("--persons", type=int, default=200_000, help="warehouse size for the page timings")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--run-persons", type=int, default=50_000, help="drop size for the nightly runs")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--think", type=float, default=2.0, help="seconds between a session's pages")
    parser.add_argument("--work", type=Path, default=Path("/tmp/skolon-school-admin-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part in ("pages", "both"):
        bench_pages(args.work, args.persons, args.requests)
    if args.part in ("run", "both"):
        bench_run(args.work, args.run_persons, args.sessions, args.think)


if __name__ == "__main__":
    main()
