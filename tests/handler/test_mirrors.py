"""A public route with a mirror, against stand-in registries: a read the primary fails (5xx, 429,
no answer head in time, its realm failing) is the mirror's, read with the mirror's own realm;
every other answer of the primary stands; writes and reads with a client's own login never fail
over; with a fallback too, the mirror's "unknown" goes on to the fallback; the edge keeps a
mirror's answers as the route's own; the log line and the page name the mirror.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from crev.rewrite.edge_cache import IMMUTABLE, NOT_SHARED
from tests.support.crev_server import CrevServer
from tests.support.faulty_upstream import RawUpstream, silent
from tests.support.registry_stand_in import DIGEST, StandIn, manifest, run_stand_in, unknown

HTML = {"Accept": "text/html"}


def failing(status: int) -> Callable[[WerkzeugRequest], WerkzeugResponse]:
    body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "down"}]})
    return lambda _: WerkzeugResponse(body, status, {"Content-Type": "application/json"})


def new_stand_in() -> Iterator[StandIn]:
    with run_stand_in() as stand_in:
        yield stand_in


@pytest.fixture
def primary(httpserver: HTTPServer) -> StandIn:
    return StandIn(httpserver)


mirror = pytest.fixture(new_stand_in, name="mirror")
fallback = pytest.fixture(new_stand_in, name="fallback")


@pytest.fixture
def crev(
    start_crev: Callable[..., CrevServer], primary: StandIn, mirror: StandIn
) -> Callable[..., CrevServer]:
    def start(**settings: str) -> CrevServer:
        return start_crev(
            **{
                "registry_host": primary.host,
                "registry_scheme": "http",
                "repo_prefix": "acme",
                "public": "1",
                "mirror_registry_host": mirror.host,
                "mirror_registry_scheme": "http",
                "mirror_repo_prefix": "copy",
                **settings,
            }
        )

    return start


def logged(caplog: pytest.LogCaptureFixture, expected: str) -> bool:
    """Whether a log line starts with `expected`; a request is logged once its answer has gone
    out, so the line is waited for."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(line.startswith(expected) for line in caplog.messages):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_a_failing_primary_is_answered_for_by_the_mirror(
    crev: Callable[..., CrevServer],
    primary: StandIn,
    mirror: StandIn,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    primary.answers["/v2/acme/tool/manifests/1"] = failing(status)
    mirror.answers["/v2/copy/tool/manifests/1"] = lambda _: manifest("mirror")
    caplog.set_level(logging.INFO, logger="crev")
    server = crev()
    answer = httpx.get(f"{server.url}/v2/tool/manifests/1")
    assert (answer.status_code, answer.json()["label"]) == (200, "mirror")
    assert primary.asked() == [("GET", "/v2/acme/tool/manifests/1")]
    assert mirror.asked() == [("GET", "/v2/copy/tool/manifests/1")]
    assert logged(
        caplog, f"GET /v2/tool/manifests/1 200 upstream={status} mirror=200@{mirror.host} "
    ), caplog.messages
    # The primary's circuit is open: the next read goes to the mirror without asking it.
    assert httpx.get(f"{server.url}/v2/tool/manifests/1").status_code == 200
    assert len(primary.asked()) == 1
    assert logged(caplog, f"GET /v2/tool/manifests/1 200 upstream=skipped mirror=200@{mirror.host}")


@pytest.mark.parametrize(
    "refusal",
    [
        WerkzeugResponse('{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}', 401),
        WerkzeugResponse('{"errors":[{"code":"DENIED","message":"no"}]}', 403),
        unknown("MANIFEST_UNKNOWN"),
        WerkzeugResponse("", 307, {"Location": "https://storage.example/x"}),
        WerkzeugResponse("bad", 400),
    ],
    ids=["401", "403", "404", "307", "400"],
)
def test_every_other_answer_of_the_primary_stands(
    crev: Callable[..., CrevServer],
    primary: StandIn,
    mirror: StandIn,
    refusal: WerkzeugResponse,
) -> None:
    primary.answers["/v2/acme/tool/manifests/1"] = lambda _: refusal
    mirror.answers["/v2/copy/tool/manifests/1"] = lambda _: manifest("mirror")
    answer = httpx.get(f"{crev().url}/v2/tool/manifests/1")
    assert answer.status_code == refusal.status_code
    assert mirror.asked() == []
    assert mirror.server.log == []


def test_when_the_mirror_fails_too_the_primarys_answer_stands(
    crev: Callable[..., CrevServer], primary: StandIn, mirror: StandIn
) -> None:
    primary.answers["/v2/acme/tool/manifests/1"] = failing(429)
    mirror.answers["/v2/copy/tool/manifests/1"] = failing(503)
    answer = httpx.get(f"{crev().url}/v2/tool/manifests/1")
    assert answer.status_code == 429
    assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert len(mirror.asked()) == 1


def test_writes_and_reads_with_a_clients_login_never_fail_over(
    crev: Callable[..., CrevServer], primary: StandIn, mirror: StandIn
) -> None:
    primary.answers["/v2/acme/tool/manifests/1"] = failing(503)
    mirror.answers["/v2/copy/tool/manifests/1"] = lambda _: manifest("mirror")
    server = crev(allow_push="1")
    pushed = httpx.put(
        f"{server.url}/v2/tool/manifests/1",
        content=b"{}",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert pushed.status_code == 503
    logged_in = httpx.get(
        f"{server.url}/v2/tool/manifests/1", headers={"Authorization": "Bearer client-token"}
    )
    assert logged_in.status_code == 503
    assert mirror.asked() == []


def test_a_primary_that_sends_no_head_in_time_is_given_up_on(
    start_crev: Callable[..., CrevServer],
    mirror: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mirror.answers["/v2/copy/tool/manifests/1"] = lambda _: manifest("mirror")
    caplog.set_level(logging.INFO, logger="crev")
    with RawUpstream(route=lambda request: silent(30)) as hung:
        server = start_crev(
            registry_host=hung.host,
            registry_scheme="http",
            repo_prefix="acme",
            public="1",
            mirror_registry_host=mirror.host,
            mirror_registry_scheme="http",
            mirror_repo_prefix="copy",
            failover_seconds="0.5",
        )
        started = time.monotonic()
        answer = httpx.get(f"{server.url}/v2/tool/manifests/1", timeout=10)
        waited = time.monotonic() - started
        again = httpx.get(f"{server.url}/v2/tool/manifests/1", timeout=10)
        # Only the first read waited for it (its realm's discovery, a `/v2/` ping).
        assert hung.paths() == ["/v2/"]
    assert (answer.status_code, again.status_code) == (200, 200)
    assert waited < 5
    assert logged(caplog, f"GET /v2/tool/manifests/1 200 upstream=timeout mirror=200@{mirror.host}")


def test_a_failing_realm_is_the_primary_failing_and_the_mirror_uses_its_own_realm(
    start_crev: Callable[..., CrevServer],
    primary: StandIn,
    mirror: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    realms = HTTPServer(host="127.0.0.1", port=0)
    realms.start()
    try:
        realms.expect_request("/primary").respond_with_data("down", 503)
        realms.expect_request("/mirror").respond_with_json(
            {"token": "mirror-token", "expires_in": 300}
        )
        primary.require_tokens_from(realms.url_for("/primary"))
        mirror.require_tokens_from(realms.url_for("/mirror"))
        mirror.answers["/v2/copy/tool/manifests/1"] = lambda request: (
            manifest("mirror")
            if request.headers.get("Authorization") == "Bearer mirror-token"
            else WerkzeugResponse("", 401)
        )
        caplog.set_level(logging.INFO, logger="crev")
        server = start_crev(
            registry_host=primary.host,
            registry_scheme="http",
            repo_prefix="acme",
            public="1",
            mirror_registry_host=mirror.host,
            mirror_registry_scheme="http",
            mirror_repo_prefix="copy",
        )
        answer = httpx.get(f"{server.url}/v2/tool/manifests/1")
        assert (answer.status_code, answer.json()["label"]) == (200, "mirror")
        # The primary itself was never asked for the manifest: its realm failed first.
        assert primary.asked() == []
        assert [request.path for request, _ in realms.log] == ["/primary", "/mirror"]
        assert logged(
            caplog, f"GET /v2/tool/manifests/1 200 upstream=realm-503 mirror=200@{mirror.host}"
        )
    finally:
        realms.clear()
        realms.stop()


def test_a_failing_realm_without_a_mirror_is_a_502_naming_it(
    start_crev: Callable[..., CrevServer], httpserver: HTTPServer
) -> None:
    realm = httpserver.url_for("/token")
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}
    )
    httpserver.expect_request("/token").respond_with_data("down", 503)
    server = start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}",
        registry_scheme="http",
        repo_prefix="acme",
        public="1",
    )
    answer = httpx.get(f"{server.url}/v2/tool/manifests/1")
    assert answer.status_code == 502
    assert answer.json()["errors"][0] == {
        "code": "UNAVAILABLE",
        "message": f"the upstream token realm {urlsplit(realm).netloc} failed (status 503)",
    }
    assert [request.path for request, _ in httpserver.log] == ["/v2/", "/token"]


def test_the_mirrors_unknown_name_goes_on_to_the_fallback(
    crev: Callable[..., CrevServer],
    primary: StandIn,
    mirror: StandIn,
    fallback: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    primary.answers["/v2/acme/tool/manifests/1"] = failing(503)
    fallback.answers["/v2/old/tool/manifests/1"] = lambda _: manifest("old")
    caplog.set_level(logging.INFO, logger="crev")
    server = crev(
        fallback_registry_host=fallback.host,
        fallback_registry_scheme="http",
        fallback_repo_prefix="old",
    )
    answer = httpx.get(f"{server.url}/v2/tool/manifests/1")
    assert (answer.status_code, answer.json()["label"]) == (200, "old")
    assert mirror.asked() == [("GET", "/v2/copy/tool/manifests/1")]
    assert logged(
        caplog,
        f"GET /v2/tool/manifests/1 200 upstream=503 mirror=404@{mirror.host} "
        f"fallback=200@{fallback.host} ",
    ), caplog.messages


def test_a_tag_list_with_a_fallback_takes_the_mirrors_tags_when_the_primary_fails(
    crev: Callable[..., CrevServer], primary: StandIn, mirror: StandIn, fallback: StandIn
) -> None:
    primary.answers["/v2/acme/tool/tags/list"] = failing(502)
    mirror.answers["/v2/copy/tool/tags/list"] = lambda _: WerkzeugResponse(
        json.dumps({"name": "copy/tool", "tags": ["2", "1"]}),
        headers={"Content-Type": "application/json"},
    )
    fallback.answers["/v2/old/tool/tags/list"] = lambda _: WerkzeugResponse(
        json.dumps({"name": "old/tool", "tags": ["0.9"]}),
        headers={"Content-Type": "application/json"},
    )
    server = crev(
        fallback_registry_host=fallback.host,
        fallback_registry_scheme="http",
        fallback_repo_prefix="old",
    )
    answer = httpx.get(f"{server.url}/v2/tool/tags/list")
    assert answer.json() == {"name": "tool", "tags": ["0.9", "1", "2"]}


@pytest.mark.parametrize(
    ("tag_seconds", "by_tag"), [("", NOT_SHARED), ("300", "public, max-age=0, s-maxage=300")]
)
def test_the_edge_keeps_a_mirrors_answers_as_the_routes_own(
    crev: Callable[..., CrevServer],
    primary: StandIn,
    mirror: StandIn,
    tag_seconds: str,
    by_tag: str,
) -> None:
    primary.answers["/v2/acme/tool/manifests/1"] = failing(503)
    primary.answers[f"/v2/acme/tool/manifests/{DIGEST}"] = failing(503)
    mirror.answers["/v2/copy/tool/manifests/1"] = lambda _: manifest("mirror")
    mirror.answers[f"/v2/copy/tool/manifests/{DIGEST}"] = lambda _: manifest("mirror")
    server = crev(tag_cache_seconds=tag_seconds)
    assert httpx.get(f"{server.url}/v2/tool/manifests/1").headers["cache-control"] == by_tag
    by_digest = httpx.get(f"{server.url}/v2/tool/manifests/{DIGEST}")
    assert by_digest.headers["cache-control"] == IMMUTABLE


def test_the_page_shows_the_mirror_and_lists_its_tags_when_the_primary_fails(
    crev: Callable[..., CrevServer], primary: StandIn, mirror: StandIn
) -> None:
    primary.answers["/v2/acme/tool/tags/list"] = failing(503)
    mirror.answers["/v2/copy/tool/tags/list"] = lambda _: WerkzeugResponse(
        json.dumps({"name": "copy/tool", "tags": ["1"]}),
        headers={"Content-Type": "application/json"},
    )
    server = crev()
    home = httpx.get(f"{server.url}/", headers=HTML).text
    assert f"(when it fails: <code>{mirror.host}/copy/NAME</code>)" in home
    page = httpx.get(f"{server.url}/tool", headers=HTML)
    assert page.status_code == 200
    assert f"(when it fails, from <code>{mirror.host}/copy/tool</code>)" in page.text
    assert "Tags (1)" in page.text
