"""`Location` and `Link` rewriting: upstream URLs shown as the client should follow them.

Storage redirects (another host) pass untouched: they are presigned and must reach the client as
they are. URLs on the upstream itself are either paths under the prefix, which the client reaches
through crev, or anything else (Artifact Registry's `/artifacts-downloads/...`), which the client
must fetch from the upstream directly because crev's own host does not serve it.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from .config import Upstream
from .names import Namespace
from .params import MalformedHeaderError, Scanner, check_field_value


def rewrite_location(
    location: str, request_url: str, upstream: Upstream, namespace: Namespace
) -> str:
    """A `Location` as the client must follow it; `request_url` is the upstream URL asked."""
    check_field_value(location)
    resolved = urlsplit(urljoin(request_url, location))
    if not upstream.is_same_host(resolved.scheme, resolved.netloc):
        return location
    vanity_path = _vanity_path(resolved.path, namespace)
    if vanity_path is None:
        return resolved.geturl()
    return vanity_path + (f"?{resolved.query}" if resolved.query else "")


def _vanity_path(path: str, namespace: Namespace) -> str | None:
    if not path.startswith("/v2/"):
        return None
    if not namespace.prefix:
        return path
    under = f"/v2/{namespace.prefix}/"
    return "/v2/" + path[len(under) :] if path.startswith(under) else None


def rewrite_link(header: str, request_url: str, upstream: Upstream, namespace: Namespace) -> str:
    """Each `<target>` of an RFC 8288 `Link` value rewritten like a `Location`; params kept."""
    scanner = Scanner(header)
    links: list[str] = []
    while True:
        scanner.skip_whitespace()
        if scanner.at_end():
            break
        if not scanner.take("<"):
            raise scanner.fail("'<' opening a link target")
        target = rewrite_location(scanner.until(">"), request_url, upstream, namespace)
        params = _link_params(scanner)
        links.append(f"<{target}>{params}")
        scanner.skip_whitespace()
        if not scanner.at_end() and not scanner.take(","):
            raise scanner.fail("',' between links")
    if not links:
        raise MalformedHeaderError(f"no link in {header!r}")
    return ", ".join(links)


def _link_params(scanner: Scanner) -> str:
    """The `; name=value` parameters after a target, verbatim but validated."""
    start = scanner.position
    end = start
    while scanner.take(";"):
        scanner.token()
        if scanner.take("="):
            scanner.value()
        end = scanner.position
    return scanner.text[start:end]
