"""What one pull costs crev, request by request: its CPU for each kind of request a `skopeo
copy` of the 8-layer image makes, and the upstream connections a pull that fetches every
layer at once opens, first and again."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from typing import Any

import httpx

from rig.images import MANIFEST_ACCEPT

from ..plan import Plan
from ..probes import MiB, UpstreamConnectionWatcher, log, process_cpu_seconds
from ..testbed import Testbed

# The kinds of request a pull makes, in its order; the `/v2/` ping and the token come without
# and with no credentials of the client's, as skopeo asks them.
KINDS = ("ping", "token", "manifest", "config", "layer")


def request_cpu(bed: Testbed, plan: Plan) -> dict[str, Any]:
    """How much CPU does crev spend on each kind of request of a pull of the 8-layer image
    (warm, one keep-alive client), and how many upstream connections does a pull that fetches
    its eight layers at once open, the first time and the next?"""
    crev = bed.targets["crev"]
    name = crev.name(bed.images.eight_layer_image)
    scope = f"repository:{name}:pull"
    with httpx.Client(timeout=30) as client:
        answer = client.get(
            crev.url("/api/token"), params={"service": bed.registry.service, "scope": scope}
        )
        answer.raise_for_status()
        token = answer.json().get("token") or answer.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        manifest_url = crev.url(f"/v2/{name}/manifests/1")
        manifest = client.get(manifest_url, headers={**auth, "Accept": MANIFEST_ACCEPT}).json()
        layers = [layer["digest"] for layer in manifest["layers"]]
        blob_path = f"/v2/{name}/blobs/"
        reader = http.client.HTTPConnection(*crev.host.rsplit(":", 1))
        view = memoryview(bytearray(MiB))

        def blob(digest: str) -> Callable[[], int]:
            def get() -> int:
                reader.request("GET", blob_path + digest, headers=auth)
                response = reader.getresponse()
                while response.readinto(view):
                    pass
                return response.status

            return get

        requests: dict[str, Callable[[], int]] = {
            "ping": lambda: client.get(crev.url("/v2/")).status_code,
            "token": lambda: client.get(
                crev.url("/api/token"), params={"service": bed.registry.service, "scope": scope}
            ).status_code,
            "manifest": lambda: client.get(
                manifest_url, headers={**auth, "Accept": MANIFEST_ACCEPT}
            ).status_code,
            "config": blob(manifest["config"]["digest"]),
            "layer": blob(layers[0]),
        }
        counts = {"ping": 200, "token": 40, "manifest": 300, "config": 200, "layer": 60}
        if plan.cpu_copies < 10:  # a quick run
            counts = {kind: max(count // 5, 10) for kind, count in counts.items()}
        result: dict[str, Any] = {"ms": {}}
        for kind in KINDS:
            result["ms"][kind] = cpu_ms_per_request(bed.crev_pid, requests[kind], counts[kind])
        reader.close()
    result["layer_bytes"] = manifest["layers"][0]["size"]
    result["parallel_pulls"] = [parallel_pull(bed, crev.host, blob_path, auth, layers)]
    result["parallel_pulls"].append(parallel_pull(bed, crev.host, blob_path, auth, layers))
    ms = result["ms"]
    log(
        f"crev CPU per request ({bed.upstream} upstream): "
        + ", ".join(f"{kind} {ms[kind]:.2f} ms" for kind in KINDS)
        + "; new upstream connections of a parallel pull, first / next: "
        + " / ".join(str(pull["new_connections"]) for pull in result["parallel_pulls"])
    )
    return result


def cpu_ms_per_request(pid: int, request: Callable[[], int], count: int) -> float:
    for _ in range(3):  # warm: connections, caches
        request()
    before = process_cpu_seconds(pid)
    for _ in range(count):
        status = request()
        if status not in (200, 401):
            raise RuntimeError(f"a request of the breakdown answered {status}")
    return (process_cpu_seconds(pid) - before) * 1000 / count


def parallel_pull(
    bed: Testbed, host: str, blob_path: str, auth: dict[str, str], layers: list[str]
) -> dict[str, Any]:
    """Every layer at once, each on a connection of its own (as podman and docker fetch
    layers): the upstream connections crev opens for them, and its CPU."""

    def fetch(digest: str) -> None:
        connection = http.client.HTTPConnection(*host.rsplit(":", 1))
        connection.request("GET", blob_path + digest, headers=auth)
        connection.getresponse().read()
        connection.close()

    before = process_cpu_seconds(bed.crev_pid)
    with UpstreamConnectionWatcher(bed.crev_pid, bed.upstream_port) as watch:
        threads = [threading.Thread(target=fetch, args=(digest,)) for digest in layers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {
        "layers": len(layers),
        "new_connections": watch.opened,
        "pooled_before": len(watch.baseline),
        "crev_cpu_ms": (process_cpu_seconds(bed.crev_pid) - before) * 1000,
    }
