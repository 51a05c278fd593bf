"""crev's connections upstream: an `UpstreamRequest` in, an `UpstreamResponse` out, through one
httpx client per process (crev/upstream/transport.py builds it), whoever asks (a registry, a
token realm).

Redirects are never followed: they go back to the client, whose credentials must not travel.
What crev adds to httpx here: a single retry of an idempotent request that met a connection the
upstream had just closed, the refusal of an answer head a host behind crev could read another
way, and one vocabulary of failures (502/504 registry errors naming the upstream).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator

import h11
import httpx

from ..errors import (
    IncompleteBodyError,
    UpstreamClosedError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamTLSError,
    UpstreamUnreachableError,
    describe,
)
from ..messages import Headers, has_control_characters
from ..urls import URL
from .response import UpstreamResponse
from .transport import Deadline, MadeOnFirstUse, new_client

CONNECT_SECONDS = 10.0
# Methods whose request may be sent again when a reused connection turns out closed before any
# answer (RFC 9110 9.2.2); a proxy never replays the others by itself (RFC 9112 9.3.1).
_RETRYABLE_METHODS = frozenset({"GET", "HEAD"})


class UpstreamRequest:
    """A request as crev sends it upstream: every header is crev's choice (httpx adds only
    `Host` and the body's framing), and a body is bytes or a stream read from the client. A
    value: what would change it (an `Authorization`) makes another. (Written out rather than a
    frozen dataclass: building one at import is a cold start's cost.)"""

    __slots__ = ("body", "headers", "method", "url")
    method: str
    url: URL
    headers: Headers
    body: bytes | Iterable[bytes] | None

    def __init__(
        self,
        method: str,
        url: URL,
        headers: Headers,
        body: bytes | Iterable[bytes] | None = None,
    ) -> None:
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "body", body)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"an UpstreamRequest is a value: its {name} does not change")

    def __repr__(self) -> str:
        return f"UpstreamRequest({self.method!r}, {str(self.url)!r})"

    @property
    def streams_body(self) -> bool:
        return self.body is not None and not isinstance(self.body, bytes)

    def with_authorization(self, authorization: str | None) -> UpstreamRequest:
        """The same request with this `Authorization`, or with none; this one is left as it is."""
        headers = self.headers.copy()
        if authorization is None:
            headers.remove("Authorization")
        else:
            headers.set("Authorization", authorization)
        return UpstreamRequest(self.method, self.url, headers, self.body)


_head = threading.local()


@contextlib.contextmanager
def head_within(seconds: float) -> Iterator[None]:
    """Every request sent on this thread in the block (to an upstream or its realm) waits at
    most `seconds` to connect and for its answer's head; its body's reads keep the timeout
    they are sent with. A route with mirrors gives up on its upstream this way, without every
    call between the route and the socket passing the wait along."""
    outer = getattr(_head, "seconds", None)
    _head.seconds = seconds if outer is None else min(seconds, outer)
    try:
        yield
    finally:
        _head.seconds = outer


class Connections:
    """One httpx client and its pool of connections, made on first use (a cold start that
    answers without asking upstream never builds it). A test gives a client of its own, over
    httpx's `MockTransport` for instance."""

    def __init__(self, make_client: Callable[[], httpx.Client] = new_client) -> None:
        self._client = MadeOnFirstUse(make_client)

    def close(self) -> None:
        """Close every pooled connection; the next request builds the client anew."""
        self._client.reset()

    def send(self, request: UpstreamRequest, timeout: float) -> UpstreamResponse:
        """Send a request upstream and return the answer with its body still unread.

        `timeout` bounds connecting (at most 10 s), waiting for a pooled connection, each
        write and each body read, and the wait for the answer's head as a whole (shorter
        within `head_within`).
        """
        limit = getattr(_head, "seconds", None)
        head = timeout if limit is None else min(limit, timeout)
        url = str(request.url)
        body = request.body
        content = body if body is None or isinstance(body, bytes) else _streamed_body(body)
        # As bytes: a client's header may hold obs-text, which httpx would not encode.
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers
            if name.lower() not in _OWN
        ]
        headers.append((b"User-Agent", b"crev"))
        if "accept-encoding" not in request.headers:
            # Without one any coding is acceptable; crev passes bodies on as they come.
            headers.append((b"Accept-Encoding", b"identity"))
        try:
            sent = httpx.Request(
                request.method,
                url,
                headers=headers,
                content=content,
                extensions={"timeout": _timeouts(timeout, head)},
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as error:
            raise UpstreamError(f"cannot ask the upstream {url!r}: {error}") from None
        if sent.url.scheme not in ("http", "https"):
            raise UpstreamError(f"cannot ask the upstream {url!r}: not an http(s) URL")
        retry = request.method in _RETRYABLE_METHODS and request.body is None
        client = self._client.get()
        while True:
            try:
                with Deadline(head, started=not request.streams_body):
                    response = client.send(sent, stream=True)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
                if retry and _closed_before_answering(error):
                    retry = False
                    continue
                raise _failure(error, sent, head) from None
            except (httpx.HTTPError, httpx.StreamError) as error:
                raise _failure(error, sent, head) from None
            return _checked(UpstreamResponse(response, request.method), response, sent)


def _streamed_body(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A body read from the client as it is sent on. The wait for the answer's head starts
    once it has all gone, however long a push takes; a client that stops sending is the
    client's failure, not the upstream's."""
    try:
        yield from chunks
    except OSError as error:
        raise IncompleteBodyError(f"the request body stopped arriving: {describe(error)}") from None
    Deadline.start()


# crev decides these itself for every request.
_OWN = frozenset({"host", "user-agent", "transfer-encoding", "connection"})


def _timeouts(seconds: float, head: float) -> dict[str, float]:
    return {
        "connect": min(CONNECT_SECONDS, head),
        "read": seconds,
        "write": seconds,
        "pool": seconds,
    }


def _closed_before_answering(error: httpx.TransportError) -> bool:
    """Whether the connection ended before any answer: what a pooled connection the upstream
    closed a moment before it was reused looks like (a reset, or a close before the status
    line)."""
    return not _is_malformed(error)


def _is_malformed(error: httpx.TransportError) -> bool:
    """Whether h11 refused what the upstream sent: httpcore raises its protocol error while
    handling h11's, except for a connection that closed before the status line, where there is
    no h11 error behind it."""
    return isinstance(error, httpx.RemoteProtocolError) and isinstance(
        getattr(error.__cause__, "__context__", None), h11.RemoteProtocolError
    )


def _checked(
    response: UpstreamResponse, raw: httpx.Response, sent: httpx.Request
) -> UpstreamResponse:
    """Refuse an answer whose head a host behind crev could read another way. h11 lets a
    Transfer-Encoding override a Content-Length (RFC 9112 6.3 asks a proxy to treat that as an
    error or drop the length) and takes control characters in values; crev forwards neither."""
    fault = None
    if "transfer-encoding" in response.headers and "content-length" in response.headers:
        fault = "both Content-Length and Transfer-Encoding"
    elif any(has_control_characters(value) for _, value in raw.headers.raw):
        fault = "control character in a header"
    if fault is None:
        return response
    response.close()
    host = sent.url.netloc.decode("ascii", "replace")
    raise UpstreamError(f"upstream {host} sent a malformed answer: {fault}")


def _failure(error: Exception, sent: httpx.Request, timeout: float) -> UpstreamError:
    """The error for an upstream that could not answer, in words that name it."""
    host = sent.url.netloc.decode("ascii", "replace")
    if isinstance(error, httpx.ConnectTimeout):
        # Connecting has a bound of its own, below the timeout: say the one that fired.
        bound = min(CONNECT_SECONDS, timeout)
        return UpstreamTimeoutError(
            f"upstream {host} did not complete a connection (TCP and TLS handshakes) "
            f"within {bound:g} s"
        )
    if isinstance(error, httpx.TimeoutException):
        return UpstreamTimeoutError(f"upstream {host} did not answer within {timeout:g} s")
    if isinstance(error, httpx.ConnectError) and _ssl_reason(error) == "WRONG_VERSION_NUMBER":
        # What OpenSSL makes of a plain-HTTP answer to its ClientHello.
        return UpstreamTLSError(
            f"upstream {host} did not answer https in TLS ({describe(error)}): is the upstream "
            "plain HTTP? set CREV_REGISTRY_SCHEME=http (http:// in a CREV_ROUTES entry)"
        )
    if isinstance(error, httpx.RemoteProtocolError) and _is_malformed(error):
        return UpstreamError(f"upstream {host} sent a malformed answer: {error}")
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return UpstreamClosedError(
            f"upstream {host} closed the connection without answering ({describe(error)})"
        )
    if isinstance(error, httpx.ConnectError) and _ssl_reason(error) is not None:
        return UpstreamTLSError(f"upstream {host} is unreachable: {describe(error)}")
    if isinstance(error, httpx.ConnectError):
        return UpstreamUnreachableError(f"upstream {host} is unreachable: {describe(error)}")
    return UpstreamError(f"upstream {host} failed: {describe(error)}")


def _ssl_reason(error: BaseException) -> str | None:
    """OpenSSL's reason for the TLS failure behind `error` (`WRONG_VERSION_NUMBER`), if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen.reason
        seen = seen.__cause__ or seen.__context__
    return None
