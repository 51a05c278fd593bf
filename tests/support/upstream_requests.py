"""What a pull asked of the test registry and its token issuer, and the checks on it that the
client tests (ctr, podman, docker, skopeo, ...) share."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import httpx

from crev.rewrite.challenge import parse_challenges
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


def assert_only_pulled(registry: TestRegistry, name: str, crev: CrevProcess) -> None:
    """Since the last `clear_logs`, the registry served `name` alone and the issuer was asked
    for nothing but pulling it: crev mapped the client's name once, under the prefix. An
    anonymous client's token crev answers from the one the issuer gave an earlier anonymous
    pull of `name` (crev/upstream/anonymous_token.py), and then the issuer is asked nothing."""
    assert repository_names(registry.access_log()) == {name}
    requests = registry.issuer.requests()
    if requests:
        assert requested_scopes(requests) == {f"repository:{name}:pull"}
    else:
        assert_crev_keeps_the_token_for(registry, crev, name)


def assert_crev_keeps_the_token_for(
    registry: TestRegistry, crev: CrevProcess, name: str
) -> set[tuple[str, str]]:
    """crev answers an anonymous client's token request for pulling `name` (as the client
    names it, without the `acme/` prefix) without asking the issuer, with a token the issuer
    granted for `name` under the prefix, or for nothing (a private name): what it grants."""
    asked = len(registry.issuer.requests())
    token = ask_crev_for_a_token(crev, [("scope", f"repository:{name.removeprefix('acme/')}:pull")])
    assert len(registry.issuer.requests()) == asked
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    granted = {(grant["type"], grant["name"]) for grant in claims["access"]}
    assert granted <= {("repository", name)}
    return granted


def ask_crev_for_a_token(crev: CrevProcess, params: list[tuple[str, str]]) -> str:
    """The token crev's token endpoint answers an anonymous client with `params`, the service
    being the one crev's challenge names."""
    challenge = httpx.get(f"{crev.url}/v2/", timeout=30).headers["WWW-Authenticate"]
    (bearer,) = [c for c in parse_challenges(challenge) if c.is_bearer]
    if all(key != "service" for key, _ in params) and bearer.get("service"):
        params = [("service", bearer.get("service") or ""), *params]
    response = httpx.get(bearer.get("realm") or "", params=params, timeout=30)
    assert response.status_code == 200
    return str(response.json()["token"])


# The ping every pull starts with, as the registry logs it.
PING = AccessLogEntry("GET", "/v2/")


class Answered(NamedTuple):
    """What crev answered itself of a client's pull, which the client asks directly of the
    registry (`pings`) and of its issuer (`tokens`)."""

    pings: int
    tokens: int


def is_anonymous_token_request(request: IssuerRequest) -> bool:
    """Whether a token request carries nothing of a client's: a GET with no `Authorization` and
    no `account`, which crev answers from the token the realm gave the same request before
    (crev/upstream/anonymous_token.py)."""
    return (
        request.method == "GET"
        and not request.has_authorization
        and not request.account
        and ("account" not in request.query)
    )


def _ask_crev_as(crev: CrevProcess, request: IssuerRequest, prefix: str) -> None:
    """Ask crev's token endpoint what `request` asked the issuer, with its scopes as a client of
    crev names them (without the route's `prefix`)."""
    ask_crev_for_a_token(
        crev,
        [
            (
                key,
                value.replace(f"repository:{prefix}/", "repository:") if key == "scope" else value,
            )
            for key, values in request.query.items()
            for value in values
        ],
    )


def assert_asks_upstream_as_a_direct_pull(
    registry: TestRegistry,
    crev: CrevProcess,
    pull: Callable[[str, str], object],
    reference: str = "multi:1",
) -> Answered:
    """`pull(label, reference)`, with a client that has nothing yet, straight from the registry
    (label "direct") and then through a warm crev ("proxied"): crev must send the registry and
    its issuer the very same requests the client sends them on its own, but for the client's
    `/v2/` pings, which crev answers from what it learned of the registry's, and its anonymous
    token requests, which crev answers with the token the issuer gave the same request before.
    What it answered so (the round trips saved; containerd pings not at all)."""
    direct = upstream_requests_during(
        registry, lambda: pull("direct", f"{registry.host}/acme/{reference}")
    )
    # Warm: crev has answered a ping before (crev/upstream/ping.py), as it has for every pull
    # after its first, and the same anonymous token requests, as for every anonymous pull of
    # the image after the first while the issuer's token has most of its life left.
    assert httpx.get(f"{crev.url}/v2/", timeout=30).status_code == 401
    shared = [request for request in direct.tokens if is_anonymous_token_request(request)]
    for request in shared:
        _ask_crev_as(crev, request, "acme")
    proxied = upstream_requests_during(
        registry, lambda: pull("proxied", f"{crev.host}/{reference}")
    )
    assert direct.log and direct.tokens
    not_pinged = [entry for entry in direct.log if entry != PING]
    asked = [request for request in direct.tokens if not is_anonymous_token_request(request)]
    assert (len(proxied.log), len(proxied.tokens)) == (len(not_pinged), len(asked)), "\n".join(
        ["direct:", *map(str, direct.log), "proxied:", *map(str, proxied.log)]
    )
    # The same requests, up to the order of the client's parallel blob fetches.
    assert sorted(proxied.log) == sorted(not_pinged)
    assert [r.method for r in proxied.tokens] == [r.method for r in asked]
    return Answered(len(direct.log) - len(not_pinged), len(shared))


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
