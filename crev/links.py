"""`Location` and `Link` rewriting: upstream URLs shown as the client should follow them.

Storage redirects (another host) pass untouched: they are presigned and must reach the client as
they are. URLs on the upstream itself are either paths under the prefix, which the client reaches
through crev, or anything else (Artifact Registry's `/artifacts-downloads/...`), which the client
must fetch from the upstream directly because crev's own host does not serve it.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from .names import NameMapping
from .params import MalformedHeaderError, Scanner, check_field_value
from .routing import Upstream

# Path segments that end a repository name in `/v2/<name>/<segment>/...`.
_API_SEGMENTS = frozenset({"manifests", "blobs", "tags", "referrers"})


def rewrite_location(
    location: str, request_url: str, upstream: Upstream, mapping: NameMapping
) -> str:
    """A `Location` as the client must follow it; `request_url` is the upstream URL asked."""
    check_field_value(location)
    try:
        resolved = urlsplit(urljoin(request_url, location))
    except ValueError as error:
        raise MalformedHeaderError(f"invalid URL {location!r}: {error}") from None
    if not upstream.is_same_origin(resolved.scheme, resolved.netloc):
        return location
    vanity_path = _vanity_path(resolved.path, mapping)
    if vanity_path is None:
        return resolved.geturl()
    return vanity_path + (f"?{resolved.query}" if resolved.query else "")


def _vanity_path(path: str, mapping: NameMapping) -> str | None:
    """`/v2/<upstream name>/...` as `/v2/<vanity name>/...`, or None outside the mapping."""
    if not path.startswith("/v2/"):
        return None
    segments = path[len("/v2/") :].split("/")
    # The rightmost API segment that is followed by more ends the name: a repository may itself
    # be called `x/blobs/y`, and a tag may be called `blobs`.
    for index in range(len(segments) - 2, 0, -1):
        if segments[index] in _API_SEGMENTS:
            vanity = mapping.to_vanity("/".join(segments[:index]))
            if vanity is None:
                return None
            return "/".join(["/v2", vanity.value, *segments[index:]])
    return None


def rewrite_link(header: str, request_url: str, upstream: Upstream, mapping: NameMapping) -> str:
    """Each `<target>` of an RFC 8288 `Link` value rewritten like a `Location`; params kept."""
    scanner = Scanner(check_field_value(header))
    links: list[str] = []
    while True:
        # RFC 9110 5.6.1: empty list elements are ignored.
        while scanner.take(","):
            pass
        scanner.skip_whitespace()
        if scanner.at_end():
            break
        if not scanner.take("<"):
            raise scanner.fail("'<' opening a link target")
        target = rewrite_location(scanner.until(">"), request_url, upstream, mapping)
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
