"""Reading an upstream's whole tag list: its tags, page after page as its `Link: rel="next"`
says, on the same list only and up to a bound. The registry endpoint reads one this way for the
union of a route with a fallback, and the page for people to show a repository's tags.

Where crev stops early (a malformed `Link`, a next page on another list or host, more pages
than the bound) the tags read so far come with the reason, and each reader decides: a client's
tag list cannot be partial, so the registry endpoint answers 502 with the reason; a page for
people shows what it read and says the list goes on.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from .errors import MalformedHeaderError, UpstreamError
from .messages import Headers
from .rewrite.links import next_page, same_list
from .scope import Scope
from .upstream import Upstream
from .upstream.auth import UpstreamAuth
from .upstream.connections import UpstreamRequest
from .upstream.response import UpstreamResponse
from .urls import URL

# Pages of one upstream's tag list crev follows. A registry pages by 100 tags or more (or
# never): ten thousand tags and more, and as many round trips at the most.
MAX_TAG_LIST_PAGES = 100
# Tag lists crev reads whole; one this large is not a real tag list.
MAX_TAG_LIST_BYTES = 16 * 1024 * 1024


class TagList(NamedTuple):
    """The tags an upstream lists for a name, in its order, as far as crev read them."""

    tags: list[str]
    # Why crev stopped before the list's end, naming the upstream; None when it read it all.
    cut: str | None = None


class NotATagList(NamedTuple):
    """An upstream's answer to a page that is not a list (a 401, a 404, a 500), its body
    unread, and the request it answers."""

    request: UpstreamRequest
    answer: UpstreamResponse


def read_tag_list(
    upstream: Upstream, url: URL, scopes: tuple[Scope, ...], auth: UpstreamAuth | None = None
) -> TagList | NotATagList:
    """Every tag of the list at `url` on `upstream`, authorized by crev (with the upstream's
    method, or `auth`)."""
    tags: list[str] = []
    for _ in range(MAX_TAG_LIST_PAGES):
        # crev reads the list itself: no coding it could not read (br, zstd).
        headers = Headers([("Accept", "application/json"), ("Accept-Encoding", "identity")])
        request = UpstreamRequest("GET", url, headers)
        answer = upstream.send(request, scopes, auth=auth)
        if answer.status != 200:
            return NotATagList(request, answer)
        tags += tag_names(answer.read(MAX_TAG_LIST_BYTES, upstream.timeout))
        link = answer.headers.get("link")
        try:
            following = next_page(link, url) if link else None
        except MalformedHeaderError as error:
            return TagList(tags, f"upstream {upstream.host} sent a malformed header: {error}")
        if following is None:
            return TagList(tags)
        next_url = same_list(following, url)
        if next_url is None:
            return TagList(
                tags, f"upstream {upstream.host} links its tag list's next page elsewhere"
            )
        url = next_url
    return TagList(
        tags, f"upstream {upstream.host} has more than {MAX_TAG_LIST_PAGES} pages of tags"
    )


def tag_names(body: bytes) -> list[str]:
    """The tags of a tag list body; UpstreamError when it is not one."""
    try:
        document = json.loads(body)
    except ValueError:
        raise UpstreamError("upstream tag list is not JSON") from None
    tags = document.get("tags") if isinstance(document, dict) else None
    if tags is None:
        # distribution answers `"tags": null` for a repository whose tags were all deleted.
        return []
    if not isinstance(tags, list):
        raise UpstreamError("upstream tag list has no list of tags")
    return [tag for tag in tags if isinstance(tag, str)]
