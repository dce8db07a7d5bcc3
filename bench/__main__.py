"""`python -m bench`: the benchmark of issue 7.

Seeds 1,000 and 1,000,000 iterations straight into SQLite (row for row what the API writes), checks the
seed through the API, then measures packyard (`packyard serve --no-tls`, one worker) and a raw ASGI app on
the same uvicorn settings with wrk, plus concurrent Packer publishes, and prints one table with PASS/FAIL
lines for the bars. With PACKYARD_DATABASE_URL pointing at PostgreSQL it does the same in a database it
creates there (and drops) and compares GetChannel with SQLite. Needs wrk; installs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import report, servers, wrk
from bench.run import BackendRun, Options, run_backend
from bench.seed import DatasetSpec
from bench.servers import ServerFailed
from bench.verify import SeedMismatch

FULL = (DatasetSpec("1k", 1_000), DatasetSpec("1M", 1_000_000))
QUICK = (DatasetSpec("50", 50, buckets=10), DatasetSpec("500", 500, buckets=10))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny datasets, ~1 s per workload: checks the machinery")
    p.add_argument("--sizes", help="iterations per dataset, comma-separated (default 1000,1000000)")
    p.add_argument("--seconds", type=int, help="wrk duration per workload (default 10; --quick 1)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--publishers", type=int, default=16, help="concurrent Packer publishers (default 16)")
    p.add_argument(
        "--publish-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes of the server the publish bar is measured on (default: one per core)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per workload; the best one is reported")
    p.add_argument("--no-postgres", action="store_true", help="ignore PACKYARD_DATABASE_URL")
    p.add_argument(
        "--profile", type=int, default=0, metavar="SECONDS", help="py-spy the GetChannel run at the largest size"
    )
    p.add_argument("--out", type=Path, help="directory for the profile and results.json")
    p.add_argument("--work-dir", type=Path, help="where the data directories go (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    p.add_argument("--strict", action="store_true", help="exit 1 when a bar FAILs")
    p.add_argument(
        "--no-read-cache",
        action="store_true",
        help="serve with PACKYARD_READ_CACHE_MB=0: every read runs its queries, as on a cold cache",
    )
    return p


def _specs(args: argparse.Namespace) -> tuple[DatasetSpec, ...]:
    if args.sizes:
        sizes = [int(x.replace("_", "")) for x in args.sizes.split(",")]
        buckets = 10 if max(sizes) < 10_000 else 100
        return tuple(DatasetSpec(_name(n), n, buckets=buckets) for n in sizes)
    return QUICK if args.quick else FULL


def _name(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    args = _parser().parse_args()
    try:
        wrk.require_wrk()
    except wrk.WrkMissing as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    seconds = args.seconds or (1 if args.quick else 10)
    load = wrk.Load(args.threads, args.connections, seconds, 0 if args.quick else 2)
    pg_url = None if args.no_postgres else os.environ.get("PACKYARD_DATABASE_URL", "")
    if pg_url and not pg_url.startswith(("postgres://", "postgresql")):
        pg_url = None
    if args.no_read_cache:
        servers.SERVER_SETTINGS["PACKYARD_READ_CACHE_MB"] = "0"
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="packyard-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    version = servers.source_version()
    servers.snapshot_source(work_dir)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    opts = Options(
        specs=_specs(args),
        load=load,
        publishers=args.publishers,
        publish_seconds=float(seconds),
        publish_workers=max(1, args.publish_workers),
        repeat=max(1, args.repeat),
        work_dir=work_dir,
        keep=args.keep,
        profile_seconds=args.profile,
        profile_dir=args.out or work_dir,
    )
    started = time.monotonic()
    runs: list[BackendRun] = []
    pg_failure = ""
    failures = (ServerFailed, SeedMismatch, wrk.WrkFailed, OSError)  # OSError: timeouts, refused connections
    try:
        runs.append(run_backend("SQLite", opts, say))
        if pg_url:
            try:
                runs.append(run_backend("PostgreSQL", opts, say, admin_url=pg_url))
            except failures as exc:  # the SQLite results still stand
                pg_failure = f"{type(exc).__name__}: {exc}"
                say(f"PostgreSQL run failed: {pg_failure}")
    except failures as exc:
        print(f"python -m bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.work_dir and not args.keep:
            import shutil

            shutil.rmtree(work_dir, ignore_errors=True)
    verdicts = report.verdicts(runs[0])
    if len(runs) > 1:
        verdicts += report.pg_verdicts(runs[0], runs[1])
    if pg_failure:
        verdicts.append(report.Verdict(False, f"the PostgreSQL run did not finish: {pg_failure}"))
    print(f"\nmachine: {report.machine()}")
    print(f"code: {version} (served from a copy of src/ taken at the start)")
    print(f"read cache: {'off (PACKYARD_READ_CACHE_MB=0)' if args.no_read_cache else 'on (the default)'}")
    for run in runs:
        print()
        print(report.table(run, opts))
    print()
    if args.quick:
        print("(--quick: tiny datasets and 1 s runs check the machinery; the verdicts below mean nothing)")
    for verdict in verdicts:
        print(verdict.line())
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.out:
        (args.out / "results.json").write_text(
            json.dumps(
                {"runs": [dataclasses.asdict(r) for r in runs], "verdicts": [dataclasses.asdict(v) for v in verdicts]},
                indent=1,
                default=str,
            )
        )
    return 1 if args.strict and not all(v.passed for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
