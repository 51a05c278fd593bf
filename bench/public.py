"""Round trips and time of a pull through a public route, next to a direct pull.

    .venv/bin/python bench/public.py              # 5 rounds
    .venv/bin/python bench/public.py --rounds 9

Starts the test registry (token auth, `tests.support`), pushes run.py's 6-layer image (~15 MiB,
every layer small enough for the edge to keep), and
runs crev with `CREV_PUBLIC=1` behind the caching edge stand-in that follows Vercel's rules
(`tests/support/caching_edge.py`). Each round is a `skopeo copy` to a fresh `dir:`:

- direct: from the registry itself (ping, token, manifest, blobs);
- public, first: a fresh crev and an empty edge (what the first client of a new instance meets);
- public, repeated: another client after that, through the now warm crev and edge.

For each it prints the median wall time, the requests the client made, the requests that reached
crev (edge misses) and those that reached the upstream (registry plus token issuer). Nothing
fails on a figure: it is a report; `bench/README.md` keeps the results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import push_copy_image  # noqa: E402
from tests.support import TestRegistry, skopeo, start_test_registry  # noqa: E402
from tests.support.caching_edge import run_caching_edge  # noqa: E402
from tests.support.crev_process import crev_for  # noqa: E402


class Pull(NamedTuple):
    seconds: float
    client_requests: int | None
    crev_requests: int | None
    upstream_requests: int


def copy(host: str, reference: str, destination: Path) -> float:
    started = time.perf_counter()
    skopeo("copy", "--src-tls-verify=false", f"docker://{host}/{reference}", f"dir:{destination}")
    return time.perf_counter() - started


def upstream_requests(registry: TestRegistry) -> int:
    return len(registry.access_log()) + len(registry.issuer.requests())


def direct_pull(registry: TestRegistry, work: Path) -> Pull:
    registry.clear_logs()
    seconds = copy(registry.host, "acme/six:1", work / "direct")
    return Pull(seconds, None, None, upstream_requests(registry))


def public_pulls(registry: TestRegistry, work: Path) -> tuple[Pull, Pull]:
    """A first pull through a fresh crev and edge, then a repeated one by another client."""
    with crev_for(registry, work / "crev", public="1") as crev, run_caching_edge(crev.url) as edge:
        pulls = []
        for name in ("first", "repeated"):
            registry.clear_logs()
            edge.clear_log()
            seconds = copy(edge.host, "six:1", work / name)
            pulls.append(
                Pull(seconds, len(edge.requests), len(edge.misses()), upstream_requests(registry))
            )
    return pulls[0], pulls[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="crev-bench-public-") as tmp,
        start_test_registry(Path(tmp) / "registry") as registry,
    ):
        push_copy_image(registry, "acme/six", "1")
        results: dict[str, list[Pull]] = {
            "direct": [],
            "public, first": [],
            "public, repeated": [],
        }
        for round_number in range(args.rounds):
            work = Path(tmp) / f"round-{round_number}"
            work.mkdir()
            results["direct"].append(direct_pull(registry, work))
            first, repeated = public_pulls(registry, work)
            results["public, first"].append(first)
            results["public, repeated"].append(repeated)
    print(f"skopeo copy of a 6-layer image, median of {args.rounds} rounds")
    print(
        f"{'pull':<18} {'time':>9} {'client reqs':>12} {'reached crev':>13} {'upstream reqs':>14}"
    )
    for name, pulls in results.items():
        seconds = statistics.median(pull.seconds for pull in pulls)
        client = _median([pull.client_requests for pull in pulls])
        reached = _median([pull.crev_requests for pull in pulls])
        upstream = statistics.median(pull.upstream_requests for pull in pulls)
        print(f"{name:<18} {seconds * 1000:>7.0f}ms {client:>12} {reached:>13} {upstream:>14g}")


def _median(values: list[int | None]) -> str:
    known = [value for value in values if value is not None]
    return f"{statistics.median(known):g}" if known else "-"


if __name__ == "__main__":
    main()
