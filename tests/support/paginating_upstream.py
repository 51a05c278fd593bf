"""A stand-in upstream registry whose tag list paginates as the distribution spec says.

Debian's registry 2.8 ignores ``n=`` and never sends ``Link``, so tag pagination through crev is
tested against this instead. It serves:

- ``GET /v2/``: 200 (anonymous) or a Bearer challenge naming its own ``/token`` realm;
- ``GET /token``: a fixed bearer token for any request (its scopes are recorded);
- ``GET /v2/<name>/tags/list?n=&last=``: the sorted tags after ``last``, at most ``n`` of them
  (``page_size`` when ``n`` is absent), with ``Link: </v2/<name>/tags/list?n=N&last=T>;
  rel="next"`` while more remain.

Every request is logged, so tests can assert which pages crev asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rig.stand_in import AnyMethodHandler, StandInServer

SERVICE = "paginating-upstream"
TOKEN = "stand-in-token"


@dataclass(frozen=True)
class UpstreamRequest:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    authorization: str | None
    status: int

    @property
    def target(self) -> str:
        """Path and query as sent, for readable assertions."""
        query = urllib.parse.urlencode(self.query, doseq=True)
        return f"{self.path}?{query}" if query else self.path


class PaginatingUpstream:
    """See the module docstring; start with ``paginating_upstream()``."""

    def __init__(
        self, name: str, tags: Sequence[str], *, page_size: int = 10, token_auth: bool = False
    ) -> None:
        self.name = name
        self.tags = sorted(tags)
        self.page_size = page_size
        self.token_auth = token_auth
        self._lock = threading.Lock()
        self._log: list[UpstreamRequest] = []
        self._server = StandInServer(_make_handler(self), name="paginating-upstream")

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def realm(self) -> str:
        return f"http://{self.host}/token"

    def requests(self) -> list[UpstreamRequest]:
        with self._lock:
            return list(self._log)

    def tag_requests(self) -> list[UpstreamRequest]:
        return [r for r in self.requests() if r.path == f"/v2/{self.name}/tags/list"]

    def served_pages(self) -> list[str]:
        """Targets of the tag-list requests answered 200, in order."""
        return [r.target for r in self.tag_requests() if r.status == 200]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, request: UpstreamRequest) -> None:
        with self._lock:
            self._log.append(request)

    def page(self, n: int | None, last: str | None) -> tuple[list[str], str | None]:
        """The tags of one page and the next page's link target, or None on the last page."""
        size = self.page_size if n is None else n
        remaining = [tag for tag in self.tags if last is None or tag > last]
        page = remaining[:size]
        if len(remaining) <= size or not page:
            return page, None
        query = urllib.parse.urlencode({"n": size, "last": page[-1]})
        return page, f"/v2/{self.name}/tags/list?{query}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


@contextlib.contextmanager
def paginating_upstream(
    name: str, tags: Sequence[str], *, page_size: int = 10, token_auth: bool = False
) -> Iterator[PaginatingUpstream]:
    upstream = PaginatingUpstream(name, tags, page_size=page_size, token_auth=token_auth)
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


def _make_handler(upstream: PaginatingUpstream) -> type[AnyMethodHandler]:
    class Handler(AnyMethodHandler):
        server_version = "paginating-upstream"
        _request: UpstreamRequest

        def serve(self) -> None:
            if self.command not in ("GET", "HEAD"):
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            head = self.command == "HEAD"
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
            authorization = self.headers.get("Authorization")
            self._request = UpstreamRequest(self.command, parsed.path, query, authorization, 0)
            if parsed.path == "/token":
                self._json(200, {"token": TOKEN, "access_token": TOKEN, "expires_in": 300}, head)
                return
            authorized = not upstream.token_auth or authorization == f"Bearer {TOKEN}"
            if parsed.path == "/v2/":
                if authorized:
                    self._json(200, {}, head)
                else:
                    self._challenge(None, head)
                return
            if parsed.path != f"/v2/{upstream.name}/tags/list":
                self._json(404, _error("NAME_UNKNOWN", "repository name not known"), head)
                return
            if not authorized:
                self._challenge(f"repository:{upstream.name}:pull", head)
                return
            try:
                n = int(query["n"][0]) if query.get("n") else None
            except ValueError:
                self._json(400, _error("PAGINATION_NUMBER_INVALID", "bad n"), head)
                return
            last = query["last"][0] if query.get("last") else None
            tags, next_link = upstream.page(n, last)
            extra = {"Link": f'<{next_link}>; rel="next"'} if next_link else {}
            self._json(200, {"name": upstream.name, "tags": tags}, head, extra)

        def _challenge(self, scope: str | None, head: bool) -> None:
            params = f'realm="{upstream.realm}",service="{SERVICE}"'
            if scope:
                params += f',scope="{scope}"'
            self._json(
                401,
                _error("UNAUTHORIZED", "authentication required"),
                head,
                {"WWW-Authenticate": f"Bearer {params}"},
            )

        def _json(
            self, status: int, body: Any, head: bool, headers: dict[str, str] | None = None
        ) -> None:
            upstream._record(dataclasses.replace(self._request, status=status))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(payload)

    return Handler


def _error(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}
