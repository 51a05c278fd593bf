"""Routes built in a test as the settings build them: each upstream with a method of
authentication (the client's own login unless given) and connections of its own."""

from __future__ import annotations

from crev.names import Namespace
from crev.routing import Route
from crev.upstream import Upstream
from crev.upstream.auth import UpstreamAuth
from crev.urls import URL, Origin


def route_to(
    vanity_prefix: str,
    origin: Origin,
    namespace: Namespace,
    auth: UpstreamAuth | None = None,
    realm: URL | None = None,
    *,
    public: bool = False,
    fallback: Upstream | None = None,
) -> Route:
    """A route of one upstream (and its fallback, if any)."""
    upstream = Upstream(origin, namespace, auth, realm=realm)
    upstreams = (upstream,) if fallback is None else (upstream, fallback)
    return Route(vanity_prefix, upstreams, public)
