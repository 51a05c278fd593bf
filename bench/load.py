"""crev load run: concurrent pulls through `python -m crev` from the real test registry.

    .venv/bin/python bench/load.py                                 # 60 s, 16 concurrent pullers
    .venv/bin/python bench/load.py --duration 600 --concurrency 32

Starts the registry with token auth (`tests/support`), pushes the standard images (a multi-layer
image, a multi-platform index, a Docker schema2 image, an artifact and a large image), runs crev
in front of it and pulls through crev for `--duration` seconds: manifests by tag and by digest,
and blobs, each body checked against its sha256 digest. Tokens come from crev's own token
endpoint, anonymously, as a client would get them. Prints requests, errors, wrong digests,
p50/p99 latency and crev's peak RSS (also per half of the run, to show whether memory grows);
exits 1 on any error or wrong digest. `tests/hardening/test_load.py` is the short version.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.support import PushedImage, seed_images  # noqa: E402
from tests.support.crev_process import crev_for  # noqa: E402
from tests.support.pull_load import LoadResult, MiB, pull_plan, run_load  # noqa: E402
from tests.support.registry import start_test_registry  # noqa: E402

PREFIX = "acme"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def anonymous_token(crev_url: str, service: str, images: list[PushedImage]) -> str:
    """A pull token for every image, from crev's token endpoint (as docker gets one)."""
    params = [("service", service)] + [
        ("scope", f"repository:{image.name.removeprefix(PREFIX + '/')}:pull") for image in images
    ]
    response = httpx.get(f"{crev_url}/api/token", params=params, timeout=30)
    response.raise_for_status()
    document = response.json()
    return str(document.get("token") or document["access_token"])


def report(result: LoadResult, plan_size: int) -> str:
    s = result.summary()
    rows = [
        ("duration", f"{s['duration_s']} s, {s['concurrency']} concurrent pullers"),
        ("plan", f"{plan_size} distinct fetches (manifests by tag and digest, blobs)"),
        ("requests", f"{s['requests']} ({s['requests_per_s']}/s)"),
        ("  by kind", ", ".join(f"{k} {v}" for k, v in sorted(result.by_kind.items()))),
        ("errors", str(s["errors"])),
        ("wrong digests", str(s["wrong_digests"])),
        ("transferred", f"{s['mib_transferred']} MiB"),
        ("latency p50", f"{s['p50_ms']} ms"),
        ("latency p99", f"{s['p99_ms']} ms"),
        ("crev peak RSS", f"{s['peak_rss_mib']} MiB"),
        (
            "  per half",
            f"{s['rss_first_half_peak_mib']} MiB, then {s['rss_second_half_peak_mib']} MiB",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    lines += [f"error: {sample}" for sample in result.error_samples[:5]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent pullers (16)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not counted (2)")
    parser.add_argument(
        "--large-mib", type=int, default=32, help="size of the large image's layer (32)"
    )
    parser.add_argument(
        "--max-blob-mib",
        type=float,
        default=64.0,
        help="leave out blobs larger than this (64: every blob of the default images)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.concurrency <= 0 or args.warmup < 0:
        parser.error("--duration and --concurrency must be positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [tool for tool in ("docker-registry", "skopeo") if shutil.which(tool) is None]
    if missing:
        print(f"load: needs {', '.join(missing)} (apt-get install docker-registry skopeo)")
        return 2
    with tempfile.TemporaryDirectory(prefix="crev-load-") as tmp:
        workdir = Path(tmp)
        log("starting the registry and pushing images")
        with start_test_registry(workdir / "registry") as registry:
            seeded = seed_images(registry, large_size=args.large_mib * MiB)
            images = [
                image
                for key, image in seeded.items()
                if key not in ("other", "private")  # outside the prefix / needs credentials
            ]
            plan = pull_plan(images, PREFIX, int(args.max_blob_mib * MiB))
            with crev_for(registry, workdir / "crev") as crev:
                log(
                    f"pulling through {crev.url} for {args.warmup:g} + {args.duration:g} s "
                    f"with {args.concurrency} pullers"
                )
                result = run_load(
                    crev.url,
                    plan,
                    lambda: anonymous_token(crev.url, registry.service, images),
                    duration=args.duration,
                    concurrency=args.concurrency,
                    pid=crev.process.pid,
                    warmup=args.warmup,
                    seed=args.seed,
                )
    print(report(result, len(plan)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.summary(), indent=2) + "\n")
    return 0 if result.errors == 0 and result.wrong_digests == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
