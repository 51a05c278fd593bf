"""Routes: which upstream registry and namespace serve which vanity names.

One domain can front several registries (`tools/` from ghcr.io, `hub/` from Docker Hub, the rest
from another); the longest matching vanity prefix wins. The single-upstream settings are the
one-route case, a route with an empty vanity prefix.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import NameUnknownError
from .names import OFFICIAL_IMAGES_NAMESPACE, Namespace, RepositoryName
from .upstream import Upstream


class Route(NamedTuple):
    """Vanity names under `vanity_prefix` served from its upstreams: the first, then (for reads
    it does not know the name, tag or blob of) the next, its fallback."""

    vanity_prefix: str
    upstreams: tuple[Upstream, ...]
    # The route's images are public: clients pull without a login (crev reads with anonymous
    # upstream tokens of its own, unless it has server-side credentials), and answers can be
    # cached at the edge.
    public: bool = False
    # crev follows the upstreams' redirects of blob reads to storage itself and streams the
    # blob, for clients on networks that reach only the vanity domain.
    follow_redirects: bool = False
    # Registries holding the same images, asked in order for a read the upstream fails
    # (unreachable, too slow, a 5xx or a 429), with crev's own tokens, as a fallback is.
    mirrors: tuple[Upstream, ...] = ()

    @property
    def upstream(self) -> Upstream:
        return self.upstreams[0]

    @property
    def namespace(self) -> Namespace:
        return self.upstream.namespace

    @property
    def fallback(self) -> Route | None:
        """Where reads go when this route's upstream does not know a name, tag or blob (the
        registry a vanity domain is moving away from): a route of its own under the same
        vanity prefix, read with crev's own (anonymous or server-side) upstream tokens."""
        if len(self.upstreams) < 2:
            return None
        return Route(self.vanity_prefix, self.upstreams[1:], self.public, self.follow_redirects)

    @property
    def mirror_routes(self) -> tuple[Route, ...]:
        """Each mirror as a route of its own under the same vanity prefix, with the route's
        fallback behind it: a mirror answers for the upstream, the fallback for an unknown
        name."""
        return tuple(
            Route(
                self.vanity_prefix,
                (mirror, *self.upstreams[1:]),
                self.public,
                self.follow_redirects,
            )
            for mirror in self.mirrors
        )

    @property
    def server_side(self) -> bool:
        """Whether crev holds credentials of its own for the upstream, so clients never log in."""
        return self.upstream.auth.server_side

    def crev_authorizes(self, *, write: bool, client_authorized: bool) -> bool:
        """Whether crev authenticates to the upstream itself for this request, instead of
        passing on the client's own login."""
        return self.upstream.crev_authorizes(write=write, client_authorized=client_authorized)

    def owns(self, name: RepositoryName) -> bool:
        return not self.vanity_prefix or (
            name.value.startswith(self.vanity_prefix) and len(name.value) > len(self.vanity_prefix)
        )

    def to_upstream(self, name: RepositoryName) -> RepositoryName:
        rest = RepositoryName(name.value[len(self.vanity_prefix) :])
        return self.upstream.to_upstream(rest)

    def to_vanity(self, upstream_name: RepositoryName) -> RepositoryName | None:
        rest = self.upstream.to_vanity(upstream_name)
        # The prefix plus a name can outgrow the length a name may have.
        return None if rest is None else RepositoryName.find(self.vanity_prefix + rest.value)

    def describe(self) -> str:
        """How names map, in words for a person: `NAME -> https://ghcr.io/acme/NAME`."""
        mode = []
        if self.public:
            mode.append("public")
        if self.server_side:
            mode.append(self.upstream.auth.describe())
        if self.mirrors:
            shown = "; ".join(mirror._places_in_words() for mirror in self.mirror_routes)
            mode.append(f"failing over to {shown}")
        if self.fallback is not None:
            mode.append(f"falling back to {self.fallback._places_in_words()}")
        suffix = f"  ({', '.join(mode)})" if mode else ""
        return f"{self.vanity_prefix}NAME -> {self._places_in_words()}{suffix}"

    def _places_in_words(self) -> str:
        return ", ".join(
            f"{place} {names}".rstrip()
            for place, names in self.upstream_places(str(self.upstream.origin))
        )

    def upstream_places(self, where: str) -> tuple[tuple[str, str], ...]:
        """Where `NAME` lives under `where` (the upstream's URL or host), each place with the
        names it holds, in words ('' for every name): official images under `library/`."""
        if self.namespace.prefix:
            return ((f"{where}/{self.namespace.prefix}/NAME", ""),)
        if self.namespace.official_images:
            return (
                (
                    f"{where}/{OFFICIAL_IMAGES_NAMESPACE}/NAME",
                    "for one-component names (official images)",
                ),
                (f"{where}/NAME", "for the rest"),
            )
        return ((f"{where}/NAME", ""),)


class RouteTable:
    """Routes, longest vanity prefix first, so the most specific one matches."""

    __slots__ = ("routes",)

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = tuple(sorted(routes, key=lambda route: -len(route.vanity_prefix)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RouteTable) and other.routes == self.routes

    def __hash__(self) -> int:
        return hash(self.routes)

    def __repr__(self) -> str:
        return f"RouteTable({self.routes!r})"

    @property
    def default(self) -> Route:
        """The route that answers `/v2/` itself: the catch-all, else the shortest prefix's."""
        return self.routes[-1]

    @property
    def has_several(self) -> bool:
        return len(self.routes) > 1

    def serving(self, name: RepositoryName | None) -> Route:
        """The route serving a request for `name`; for none (`/v2/`), the default."""
        return self.default if name is None else self.for_name(name)

    def for_name(self, name: RepositoryName) -> Route:
        for route in self.routes:
            if route.owns(name):
                return route
        raise NameUnknownError(
            f"repository name {name.value!r} is not served here: names start with "
            + ", ".join(repr(route.vanity_prefix) for route in self.routes),
            {"name": name.value},
        )

    def by_prefix(self, prefix: str) -> Route | None:
        for route in self.routes:
            if route.vanity_prefix == prefix:
                return route
        return None
