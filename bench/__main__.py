"""`python -m bench`: crev's benchmarks, from the repository root.

    .venv/bin/python -m bench                  # the comparison, full run; profiles crev
    .venv/bin/python -m bench --quick          # the comparison, short run, no profile
    .venv/bin/python -m bench public           # pulls through a public route
    .venv/bin/python -m bench moving           # pulls through a route with a fallback
    .venv/bin/python -m bench failover         # pulls through a route with a mirror, primary down
    .venv/bin/python -m bench load             # concurrent pulls for a minute
    .venv/bin/python -m bench bundle           # what a Vercel deployment holds
    .venv/bin/python -m bench cold             # cold starts only (--tls, --root ../old)

The comparison (`compare`, the default) prints one table (direct vs crev, medians over rounds,
ratio, goal, pass/MISS) and writes the same figures as JSON. Nothing here fails on a missed
goal: it is a report; only `load` exits 1, on a wrong byte or an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rig import start_test_registry
from rig.crev_process import PROJECT_ROOT, crev_for
from rig.vercel_build import VERCEL_CLI

from . import floor, report, scenarios
from .cold_start import cold_start
from .plan import FULL, QUICK
from .probes import log
from .profile import crev_profile
from .testbed import Testbed, missing_tls_front, push_bench_images, tls_testbed

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def compare(args: argparse.Namespace) -> int:
    """Every scenario of the table, direct and through crev in one run."""
    missing = [tool for tool in ("docker-registry", "skopeo") if shutil.which(tool) is None]
    if missing or missing_tls_front():
        needs = (
            [f"{', '.join(missing)} (apt-get install docker-registry skopeo)"] if missing else []
        )
        needs += [front] if (front := missing_tls_front()) else []
        print(f"compare: needs {'; '.join(needs)}")
        return 2
    plan = QUICK if args.quick else FULL
    profile = args.profile if args.profile is not None else not args.quick
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="crev-bench-") as tmp:
        workdir = Path(tmp)
        with start_test_registry(workdir / "registry") as registry:
            log(f"registry at {registry.url}; pushing images")
            images = push_bench_images(registry)
            with crev_for(registry, workdir / "crev") as crev:
                log(f"crev at {crev.url} (pid {crev.process.pid})")
                bed = Testbed(registry, crev, images, workdir)
                first = scenarios.first_pull_requests(bed)
                results["warm_manifest"] = scenarios.warm_manifest_latency(bed, plan)
                results["concurrent"] = scenarios.concurrent_throughput(bed, plan)
                results["connection_reuse"] = scenarios.connection_reuse(bed, plan)
                results["blob"] = scenarios.blob_streaming(bed, plan)
                results["copy"] = scenarios.copy_time(bed, plan)
                results["copy_single"] = scenarios.copy_time(bed, plan, images.single_image)
                results["copy_eight"] = scenarios.copy_time(
                    bed, plan, images.eight_layer_image, plan.eight_copy_rounds
                )
                results["copy_cpu"] = scenarios.copy_cpu(bed, plan, images.eight_layer_image)
                results["request_cpu"] = scenarios.request_cpu(bed, plan)
                warm = scenarios.warm_pull_requests(bed)
                results["upstream_requests"] = {"first": first, "warm": warm}
                if profile:
                    results["profile"] = crev_profile(bed, plan, RESULTS_DIR)
                with tls_testbed(bed) as tls:
                    log(f"TLS front at {tls.targets['direct'].url('')}, crev at {tls.crev.url}")
                    results["tls"] = {
                        "warm_manifest": scenarios.warm_manifest_latency(tls, plan),
                        "blob": scenarios.blob_streaming(tls, plan),
                        "copy": scenarios.copy_time(tls, plan),
                        "copy_single": scenarios.copy_time(tls, plan, images.single_image),
                        "copy_eight": scenarios.copy_time(
                            tls, plan, images.eight_layer_image, plan.eight_copy_rounds
                        ),
                        "copy_cpu": scenarios.copy_cpu(tls, plan, images.eight_layer_image),
                        "request_cpu": scenarios.request_cpu(tls, plan),
                    }
            results["cold_start"] = cold_start(registry, plan, workdir)
    rows = report.build_rows(results)
    conditions = report.RunConditions(time.perf_counter() - started, load_start, os.getloadavg())
    print(report.render_rows(rows))
    findings = report.render_findings(results)
    if findings:
        print()
        print(findings)
    mode = "quick" if args.quick else "full"
    write_json(args.json, report.document(results, rows, plan, mode, conditions))
    print("\n" + conditions.summary(str(args.json)))
    return 0


def public(args: argparse.Namespace) -> int:
    """A pull through a public route behind a caching edge, first and repeated, and direct;
    from a registry that serves blobs itself, and from one that redirects them to storage, with
    crev's 308s kept at the edge and without."""
    load_start = os.getloadavg()
    results = scenarios.public_routes(args.rounds)
    print(report.render_public(results, args.rounds))
    redirecting = scenarios.public_routes_redirecting(args.rounds)
    print()
    print(
        report.render_public(
            redirecting, args.rounds, "a registry redirecting blobs to signed storage"
        )
    )
    load_end = os.getloadavg()
    print(
        f"\nload average (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in load_start)} at the start, "
        f"{' '.join(f'{v:.2f}' for v in load_end)} at the end"
    )
    return 0


def moving(args: argparse.Namespace) -> int:
    """First and repeated pulls through a public route with a fallback and the tag TTL, behind
    a caching edge: what reaches crev and each registry."""
    print(scenarios.render_moving(scenarios.moving_registries(args.rounds), args.rounds))
    return 0


def failover(args: argparse.Namespace) -> int:
    """Pulls through a public route with a mirror, with the primary healthy, stopped and never
    answering, first and next, beside a direct pull from the mirror."""
    print(scenarios.render_failover(scenarios.failover_pulls(args.rounds), args.rounds))
    return 0


def load(args: argparse.Namespace) -> int:
    """Concurrent pulls through crev for a while; exits 1 on any error or wrong digest."""
    missing = [tool for tool in ("docker-registry", "skopeo") if shutil.which(tool) is None]
    if missing:
        print(f"load: needs {', '.join(missing)} (apt-get install docker-registry skopeo)")
        return 2
    if args.tls and (front := missing_tls_front()):
        print(f"load --tls: needs {front}")
        return 2
    options = scenarios.LoadOptions(
        duration=args.duration,
        concurrency=args.concurrency,
        warmup=args.warmup,
        large_mib=args.large_mib,
        max_blob_mib=args.max_blob_mib,
        seed=args.seed,
        tls=args.tls,
    )
    run = scenarios.sustained_load(options)
    print(report.render_load(run))
    if args.json:
        write_json(args.json, run.result.summary())
    return 0 if run.result.errors == 0 and run.result.wrong_digests == 0 else 1


def bundle(args: argparse.Namespace) -> int:
    """What `vercel build` puts in each function, and how fast the built function starts."""
    if not VERCEL_CLI.exists():
        print("bundle: needs the Vercel CLI (npm install --prefix tests/vercel-cli)")
        return 2
    print(report.render_deployment(scenarios.deployment(args.root, args.runs)))
    return 0


def cold(args: argparse.Namespace) -> int:
    """Cold starts alone: the function as deployed, without bytecode and after the runtime's
    imports, `python -m crev`, and where the import time goes."""
    plan = dataclasses.replace(FULL, cold_spawns=args.spawns, importtime_runs=args.importtime)
    with (
        tempfile.TemporaryDirectory(prefix="crev-bench-cold-") as tmp,
        start_test_registry(Path(tmp) / "registry", tls=args.tls) as registry,
    ):
        log(f"registry at {registry.url}; measuring {args.root}")
        results = {"cold_start": cold_start(registry, plan, Path(tmp), args.root.resolve())}
    print(report.render_rows(report.build_rows(results)))
    print("\n" + "\n".join(report.import_findings(results["cold_start"]["importtime"])))
    if args.json:
        write_json(args.json, results)
    return 0


def write_json(path: Path, figures: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        epilog="Without a command, `compare` runs (so `python -m bench --quick` works).",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="command")

    table = commands.add_parser("compare", help=compare.__doc__, description=compare.__doc__)
    table.add_argument("--quick", action="store_true", help="fewer rounds and no profile")
    table.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="where to write the figures (default: bench/results/latest.json)",
    )
    table.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile crev with py-spy (default: on for a full run, off with --quick)",
    )
    table.set_defaults(run=compare)

    routes = commands.add_parser("public", help=public.__doc__, description=public.__doc__)
    routes.add_argument("--rounds", type=int, default=5, help="pulls of each kind (5)")
    routes.set_defaults(run=public)

    fallback = commands.add_parser("moving", help=moving.__doc__, description=moving.__doc__)
    fallback.add_argument("--rounds", type=int, default=1, help="pulls of each kind (1)")
    fallback.set_defaults(run=moving)

    mirrors = commands.add_parser("failover", help=failover.__doc__, description=failover.__doc__)
    mirrors.add_argument("--rounds", type=int, default=3, help="pulls of each kind (3)")
    mirrors.set_defaults(run=failover)

    pulls = commands.add_parser("load", help=load.__doc__, description=load.__doc__)
    pulls.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    pulls.add_argument("--concurrency", type=int, default=16, help="concurrent pullers (16)")
    pulls.add_argument("--warmup", type=float, default=2.0, help="seconds not counted (2)")
    pulls.add_argument(
        "--large-mib", type=int, default=32, help="size of the large image's layer (32)"
    )
    pulls.add_argument(
        "--max-blob-mib",
        type=float,
        default=64.0,
        help="leave out blobs larger than this (64: every blob of the default images)",
    )
    pulls.add_argument("--seed", type=int, default=0)
    pulls.add_argument(
        "--tls",
        action="store_true",
        help="crev's upstream: the registry behind nginx terminating TLS",
    )
    pulls.add_argument("--json", type=Path, help="also write the figures to this file")
    pulls.set_defaults(run=load)

    deployment = commands.add_parser("bundle", help=bundle.__doc__, description=bundle.__doc__)
    deployment.add_argument(
        "--root", type=Path, default=PROJECT_ROOT, help="checkout to build (this one)"
    )
    deployment.add_argument("--runs", type=int, default=15, help="cold starts timed (15)")
    deployment.set_defaults(run=bundle)

    starts = commands.add_parser("cold", help=cold.__doc__, description=cold.__doc__)
    starts.add_argument(
        "--root", type=Path, default=PROJECT_ROOT, help="checkout to measure (this one)"
    )
    starts.add_argument("--spawns", type=int, default=20, help="cold starts per variant (20)")
    starts.add_argument("--importtime", type=int, default=10, help="-X importtime runs (10)")
    starts.add_argument("--tls", action="store_true", help="a TLS registry (plain by default)")
    starts.add_argument("--json", type=Path, help="also write the figures to this file")
    starts.set_defaults(run=cold)

    floor.add_command(commands)
    return top


def parse_args(argv: list[str]) -> argparse.Namespace:
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["compare", *argv]
    top = parser()
    args = top.parse_args(argv)
    if args.command == "load" and (args.duration <= 0 or args.concurrency <= 0 or args.warmup < 0):
        top.error("--duration and --concurrency must be positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
