"""What a pull asked of the test registry and its token issuer, and the checks on it that the
client tests (ctr, podman, docker, skopeo, ...) share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from rig.crev_process import CrevProcess
from rig.issuer import IssuerRequest
from rig.registry import AccessLogEntry, TestRegistry, repository_names
from rig.tools import ToolError

# What a proxy adds to a client's error when it failed instead of relaying the upstream's answer:
# a 500, 502 or 504 as a number of its own, not inside a port (`127.0.0.1:50281`), an address or
# a longer number.
_PROXY_ERROR = re.compile(r"(?<![\d.:])(?:500|502|504)(?!\d)|internal server error")


def names_a_proxy_error(message: str) -> bool:
    """Whether a client's error message shows a proxy's own failure."""
    return _PROXY_ERROR.search(message.lower()) is not None


@dataclass(frozen=True)
class UpstreamRequests:
    """The registry's access log and the issuer's requests over one pull."""

    log: list[AccessLogEntry]
    tokens: list[IssuerRequest]


def upstream_requests_during(
    registry: TestRegistry, pull: Callable[[], object]
) -> UpstreamRequests:
    registry.clear_logs()
    pull()
    return UpstreamRequests(registry.access_log(), registry.issuer.requests())


def requested_scopes(requests: Iterable[IssuerRequest]) -> set[str]:
    """Every scope asked for, whichever request asked."""
    return {scope for request in requests for scope in request.scopes}


def assert_only_pulled(registry: TestRegistry, name: str) -> None:
    """Since the last `clear_logs`, the registry served `name` alone and the issuer was asked
    for nothing but pulling it: crev mapped the client's name once, under the prefix."""
    assert repository_names(registry.access_log()) == {name}
    assert requested_scopes(registry.issuer.requests()) == {f"repository:{name}:pull"}


# The ping every pull starts with, as the registry logs it.
PING = AccessLogEntry("GET", "/v2/")


def assert_asks_upstream_as_a_direct_pull(
    registry: TestRegistry,
    crev: CrevProcess,
    pull: Callable[[str, str], object],
    reference: str = "multi:1",
) -> int:
    """`pull(label, reference)`, with a client that has nothing yet, straight from the registry
    (label "direct") and then through a warm crev ("proxied"): crev must send the registry and
    its issuer the very same requests the client sends them on its own, but for the client's
    `/v2/` pings, which crev answers from what it learned of the registry's. How many it
    answered so (the round trips saved; containerd pings not at all)."""
    direct = upstream_requests_during(
        registry, lambda: pull("direct", f"{registry.host}/acme/{reference}")
    )
    # Warm: crev has answered a ping before (crev/upstream/ping.py), as it has for every pull
    # after its first.
    assert httpx.get(f"{crev.url}/v2/", timeout=30).status_code == 401
    proxied = upstream_requests_during(
        registry, lambda: pull("proxied", f"{crev.host}/{reference}")
    )
    assert direct.log and direct.tokens
    not_pinged = [entry for entry in direct.log if entry != PING]
    assert (len(proxied.log), len(proxied.tokens)) == (len(not_pinged), len(direct.tokens)), (
        "\n".join(["direct:", *map(str, direct.log), "proxied:", *map(str, proxied.log)])
    )
    # The same requests, up to the order of the client's parallel blob fetches.
    assert sorted(proxied.log) == sorted(not_pinged)
    assert [r.method for r in proxied.tokens] == [r.method for r in direct.tokens]
    return len(direct.log) - len(not_pinged)


def assert_refused_by_the_upstream(
    refusal: ToolError, registry: TestRegistry, name: str, *words: str
) -> None:
    """A client's failed pull of `name` was a clean refusal: its error says one of `words` and
    no proxy error, and the registry answered every request for the manifest with 401."""
    message = refusal.stderr.lower()
    assert any(word in message for word in words), message
    assert not names_a_proxy_error(message), message
    statuses = {
        record.status
        for record in registry.access_log_records()
        if f"/{name}/manifests/" in record.path
    }
    assert statuses == {401}
