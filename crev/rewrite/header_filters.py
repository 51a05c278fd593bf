"""Which headers cross crev, in each direction.

Requests carry an allow-list: what a registry needs to answer (content negotiation, ranges,
conditionals, credentials), nothing that names crev's own host. Responses carry everything but
hop-by-hop fields and cookies, which would be set on the vanity domain.
"""

from __future__ import annotations

from ..messages import Headers

_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "authorization",
        "range",
        "if-none-match",
        "if-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "user-agent",
        "content-type",
        "content-range",
        "docker-content-digest",
        "oci-subject",
    }
)

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "set-cookie",
        "server",
        "date",
    }
)


def upstream_request_headers(client: Headers, *, credentials: bool = True) -> Headers:
    """The client's headers that go upstream; `credentials=False` when crev authenticates
    upstream itself."""
    return Headers(
        (name, value)
        for name, value in client
        if name.lower() in _REQUEST_HEADERS and (credentials or name.lower() != "authorization")
    )


def client_response_headers(answer: Headers) -> Headers:
    named_in_connection = {
        token.strip().lower()
        for value in answer.get_all("connection")
        for token in value.split(",")
    }
    return Headers(
        (name, value)
        for name, value in answer
        if name.lower() not in _HOP_BY_HOP and name.lower() not in named_in_connection
    )
