"""`Location` and `Link` rewriting: upstream URLs shown as the client should follow them.

Storage redirects (another host) pass untouched: they are presigned and must reach the client as
they are. URLs on the upstream itself are either paths under the prefix, which the client reaches
through crev, or anything else (Artifact Registry's `/artifacts-downloads/...`), which the client
must fetch from the upstream directly because crev's own host does not serve it.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from ..errors import MalformedHeaderError
from ..names import NameMapping, vanity_name_of
from ..urls import URL
from .header_scanner import Scanner, check_field_value

# The statuses whose `Location` sends the client elsewhere for the same content.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Path segments that end a repository name in `/v2/<name>/<segment>/...`.
_API_SEGMENTS = frozenset({"manifests", "blobs", "tags", "referrers"})


def rewrite_location(location: str, asked: URL, mapping: NameMapping) -> str:
    """A `Location` as the client must follow it; `asked` is the upstream URL that answered."""
    check_field_value(location)
    try:
        resolved = urlsplit(urljoin(str(asked), location))
    except ValueError as error:
        raise MalformedHeaderError(f"invalid URL {location!r}: {error}") from None
    if not asked.origin.is_same_origin(resolved.scheme, resolved.netloc):
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
            vanity = vanity_name_of("/".join(segments[:index]), mapping)
            if vanity is None:
                return None
            return "/".join(["/v2", vanity.value, *segments[index:]])
    return None


class Link(NamedTuple):
    """One element of an RFC 8288 `Link` value."""

    target: str
    # The `; name=value` parameters after the target, verbatim but validated.
    params: str
    rel: str | None


def parse_links(header: str) -> list[Link]:
    """The links of a `Link` value, in order; MalformedHeaderError if it has none or is not
    one."""
    scanner = Scanner(check_field_value(header))
    links: list[Link] = []
    while scanner.at_next_element():
        if not scanner.take("<"):
            raise scanner.fail("'<' opening a link target")
        target = scanner.until(">")
        start, rel = scanner.position, None
        while scanner.take(";"):
            name = scanner.token()
            value = scanner.value() if scanner.take("=") else ""
            if name.lower() == "rel":
                rel = value
        links.append(Link(target, scanner.text[start : scanner.position], rel))
        scanner.skip_whitespace()
        if not scanner.at_end() and not scanner.take(","):
            raise scanner.fail("',' between links")
    if not links:
        raise MalformedHeaderError(f"no link in {header!r}")
    return links


def rewrite_link(header: str, asked: URL, mapping: NameMapping) -> str:
    """Each `<target>` of an RFC 8288 `Link` value rewritten like a `Location`; params kept."""
    return ", ".join(
        f"<{rewrite_location(link.target, asked, mapping)}>{link.params}"
        for link in parse_links(header)
    )


def next_page(header: str, asked: URL) -> str | None:
    """The absolute URL of a tag list's next page (`rel="next"`), if the `Link` names one."""
    for link in parse_links(header):
        if link.rel is not None and "next" in link.rel.lower().split():
            return urljoin(str(asked), link.target)
    return None


def same_list(following: str, asked: URL) -> URL | None:
    """A tag list's next page when it is on the same upstream and of the same list: crev's
    credentials never follow a link elsewhere."""
    parts = urlsplit(following)
    if not asked.origin.is_same_origin(parts.scheme, parts.netloc) or parts.path != asked.path:
        return None
    return asked.origin.url(parts.path + (f"?{parts.query}" if parts.query else ""))
