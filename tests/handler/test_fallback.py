"""A public route with a fallback upstream, against two stand-in registries: the fallback is asked
only after the primary's 404 saying it does not know the name, tag or blob; every other answer of
the primary stands; writes and reads with a client's own login go to the primary alone; tag lists
are the union of both, paginated by crev; and with a tag TTL, answers by tag are kept at the edge.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response as WerkzeugResponse

from crev.rewrite.edge_cache import IMMUTABLE, NOT_SHARED
from tests.support.crev_server import CrevServer
from tests.support.registry_stand_in import (
    DIGEST,
    MANIFEST_TYPE,
    Answer,
    StandIn,
    manifest,
    run_stand_in,
    unknown,
)


@pytest.fixture
def primary(httpserver: HTTPServer) -> StandIn:
    return StandIn(httpserver)


@pytest.fixture
def fallback() -> Iterator[StandIn]:
    with run_stand_in() as stand_in:
        yield stand_in


@pytest.fixture
def crev(
    start_crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> Callable[..., CrevServer]:
    def start(**settings: str) -> CrevServer:
        return start_crev(
            registry_host=primary.host,
            registry_scheme="http",
            repo_prefix="new",
            public="1",
            fallback_registry_host=fallback.host,
            fallback_registry_scheme="http",
            fallback_repo_prefix="old",
            **settings,
        )

    return start


def test_an_unknown_manifest_is_asked_of_the_fallback_and_the_log_says_so(
    crev: Callable[..., CrevServer],
    primary: StandIn,
    fallback: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    primary.answers["/v2/new/tool/manifests/1"] = lambda _: unknown()
    fallback.answers["/v2/old/tool/manifests/1"] = lambda _: manifest("old")
    server = crev()
    caplog.set_level(logging.INFO, logger="crev")
    answer = httpx.get(f"{server.url}/v2/tool/manifests/1")
    assert answer.status_code == 200
    assert answer.json()["label"] == "old"
    assert answer.headers["docker-content-digest"] == DIGEST
    assert primary.asked() == [("GET", "/v2/new/tool/manifests/1")]
    assert fallback.asked() == [("GET", "/v2/old/tool/manifests/1")]
    expected = f"GET /v2/tool/manifests/1 200 upstream=404 fallback=200@{fallback.host} "
    # A request is logged once its answer has gone out: wait for the line.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        line.startswith(expected) for line in caplog.messages
    ):
        time.sleep(0.02)
    assert any(line.startswith(expected) for line in caplog.messages), caplog.messages


def test_a_head_404_has_no_body_and_is_asked_of_the_fallback(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    fallback.answers["/v2/old/tool/manifests/1"] = lambda _: manifest("old")
    answer = httpx.head(f"{crev().url}/v2/tool/manifests/1")
    assert answer.status_code == 200
    assert primary.asked() == [("HEAD", "/v2/new/tool/manifests/1")]
    assert fallback.asked() == [("HEAD", "/v2/old/tool/manifests/1")]


def test_the_primary_wins_where_both_have_it(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    primary.answers["/v2/new/tool/manifests/1"] = lambda _: manifest("new")
    fallback.answers["/v2/old/tool/manifests/1"] = lambda _: manifest("old")
    assert httpx.get(f"{crev().url}/v2/tool/manifests/1").json()["label"] == "new"
    assert fallback.asked() == []


def test_an_unknown_blob_is_asked_of_the_fallback_and_stays_immutable_at_the_edge(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    primary.answers[f"/v2/new/tool/blobs/{DIGEST}"] = lambda _: unknown("BLOB_UNKNOWN")
    fallback.answers[f"/v2/old/tool/blobs/{DIGEST}"] = lambda _: WerkzeugResponse(b"layer")
    answer = httpx.get(f"{crev().url}/v2/tool/blobs/{DIGEST}")
    assert (answer.status_code, answer.content) == (200, b"layer")
    assert answer.headers["cache-control"] == IMMUTABLE


def test_a_redirect_on_the_fallback_is_shown_in_vanity_names(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    fallback.answers[f"/v2/old/tool/blobs/{DIGEST}"] = lambda _: WerkzeugResponse(
        "", 307, {"Location": "/v2/old/tool/blobs/elsewhere"}
    )
    answer = httpx.get(f"{crev().url}/v2/tool/blobs/{DIGEST}")
    assert answer.status_code == 307
    assert answer.headers["location"] == "/v2/tool/blobs/elsewhere"


@pytest.mark.parametrize(
    "refusal",
    [
        WerkzeugResponse(
            '{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}',
            401,
            {"Content-Type": "application/json", "WWW-Authenticate": 'Basic realm="x"'},
        ),
        WerkzeugResponse('{"errors":[{"code":"DENIED","message":"no"}]}', 403),
        WerkzeugResponse('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow"}]}', 429),
        WerkzeugResponse("down", 500),
        WerkzeugResponse("", 503),
        WerkzeugResponse("", 307, {"Location": "https://storage.example/x"}),
        # A 404 that does not say "unknown": not the registry speaking.
        WerkzeugResponse("404 page not found", 404, {"Content-Type": "text/plain"}),
        WerkzeugResponse(
            '{"errors":[{"code":"NAME_INVALID","message":"bad"}]}',
            404,
            {"Content-Type": "application/json"},
        ),
    ],
    ids=["401", "403", "429", "500", "503", "307", "404-text", "404-name-invalid"],
)
def test_every_other_answer_of_the_primary_stands(
    crev: Callable[..., CrevServer],
    primary: StandIn,
    fallback: StandIn,
    refusal: WerkzeugResponse,
) -> None:
    primary.answers["/v2/new/tool/manifests/1"] = lambda _: refusal
    fallback.answers["/v2/old/tool/manifests/1"] = lambda _: manifest("old")
    answer = httpx.get(f"{crev().url}/v2/tool/manifests/1")
    assert answer.status_code == refusal.status_code
    assert fallback.asked() == []


def test_a_read_with_the_clients_own_login_and_a_write_go_to_the_primary_alone(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    fallback.answers["/v2/old/tool/manifests/1"] = lambda _: manifest("old")
    primary.answers["/v2/new/tool/manifests/2"] = lambda _: WerkzeugResponse("", 201)
    server = crev(allow_push="1")
    login = {"Authorization": "Bearer client-token"}
    assert httpx.get(f"{server.url}/v2/tool/manifests/1", headers=login).status_code == 404
    put = httpx.put(
        f"{server.url}/v2/tool/manifests/2",
        content=b"{}",
        headers={**login, "Content-Type": MANIFEST_TYPE},
    )
    assert put.status_code == 201
    assert fallback.asked() == []


def tag_list(name: str, tags: list[str], link: str | None = None) -> Answer:
    headers = {"Content-Type": "application/json", **({"Link": link} if link else {})}
    return lambda _: WerkzeugResponse(json.dumps({"name": name, "tags": tags}), headers=headers)


def test_the_tag_list_is_the_union_of_both_paginated_by_crev(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    pages = {
        "": tag_list("new/tool", ["2.0", "b"], '</v2/new/tool/tags/list?last=b&n=2>; rel="next"'),
        "last=b&n=2": tag_list("new/tool", ["latest"]),
    }
    primary.answers["/v2/new/tool/tags/list"] = lambda request: pages[
        request.query_string.decode()
    ](request)
    fallback.answers["/v2/old/tool/tags/list"] = tag_list("old/tool", ["1.0", "b", "a"])
    server = crev()
    whole = httpx.get(f"{server.url}/v2/tool/tags/list")
    assert whole.status_code == 200
    assert whole.json() == {"name": "tool", "tags": ["1.0", "2.0", "a", "b", "latest"]}
    assert "link" not in whole.headers
    assert whole.headers["cache-control"] == NOT_SHARED

    first = httpx.get(f"{server.url}/v2/tool/tags/list", params={"n": "2"})
    assert first.json()["tags"] == ["1.0", "2.0"]
    assert first.headers["link"] == '</v2/tool/tags/list?n=2&last=2.0>; rel="next"'
    second = httpx.get(f"{server.url}/v2/tool/tags/list?n=2&last=2.0")
    assert second.json()["tags"] == ["a", "b"]
    third = httpx.get(f"{server.url}/v2/tool/tags/list?n=2&last=b")
    assert third.json()["tags"] == ["latest"]
    assert "link" not in third.headers
    # crev asks each upstream for the whole list, never with the client's page.
    assert {path for _, path in fallback.asked()} == {"/v2/old/tool/tags/list"}


def test_a_tag_list_on_one_side_only(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    fallback.answers["/v2/old/legacy/tags/list"] = tag_list("old/legacy", ["1"])
    primary.answers["/v2/new/fresh/tags/list"] = tag_list("new/fresh", ["9"])
    server = crev()
    assert httpx.get(f"{server.url}/v2/legacy/tags/list").json() == {
        "name": "legacy",
        "tags": ["1"],
    }
    assert httpx.get(f"{server.url}/v2/fresh/tags/list").json() == {"name": "fresh", "tags": ["9"]}
    nowhere = httpx.get(f"{server.url}/v2/nowhere/tags/list")
    assert nowhere.status_code == 404
    assert nowhere.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_a_tag_list_refused_by_either_side_is_passed_on(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    primary.answers["/v2/new/down/tags/list"] = lambda _: WerkzeugResponse("down", 500)
    fallback.answers["/v2/old/down/tags/list"] = tag_list("old/down", ["1"])
    primary.answers["/v2/new/tool/tags/list"] = tag_list("new/tool", ["2"])
    fallback.answers["/v2/old/tool/tags/list"] = lambda _: WerkzeugResponse("", 502)
    primary.answers["/v2/new/mixed/tags/list"] = tag_list("new/mixed", ["2"])
    fallback.answers["/v2/old/mixed/tags/list"] = lambda _: WerkzeugResponse(
        '{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}', 401
    )
    server = crev()
    assert httpx.get(f"{server.url}/v2/down/tags/list").status_code == 500
    assert ("GET", "/v2/old/down/tags/list") not in fallback.asked()
    assert httpx.get(f"{server.url}/v2/tool/tags/list").status_code == 502
    # A name the fallback keeps private (or, as Docker Hub, does not have) adds nothing.
    assert httpx.get(f"{server.url}/v2/mixed/tags/list").json()["tags"] == ["2"]


def test_a_page_size_that_is_no_number_is_refused(
    crev: Callable[..., CrevServer], primary: StandIn
) -> None:
    answer = httpx.get(f"{crev().url}/v2/tool/tags/list?n=ten")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"
    assert primary.asked() == []


def test_with_a_tag_ttl_answers_by_tag_are_kept_at_the_edge_and_errors_never(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    primary.answers["/v2/new/tool/manifests/1"] = lambda _: manifest("new")
    fallback.answers["/v2/old/legacy/manifests/1"] = lambda _: manifest("old")
    primary.answers[f"/v2/new/tool/manifests/{DIGEST}"] = lambda _: manifest("new")
    primary.answers["/v2/new/tool/tags/list"] = tag_list("new/tool", ["1"])
    server = crev(tag_cache_seconds="120")
    kept = "public, max-age=0, s-maxage=120"
    by_tag = httpx.get(f"{server.url}/v2/tool/manifests/1")
    assert by_tag.headers["cache-control"] == kept
    assert by_tag.headers["vary"] == "Accept"
    assert httpx.get(f"{server.url}/v2/legacy/manifests/1").headers["cache-control"] == kept
    assert httpx.head(f"{server.url}/v2/tool/manifests/1").headers["cache-control"] == kept
    assert httpx.get(f"{server.url}/v2/tool/tags/list").headers["cache-control"] == kept
    by_digest = httpx.get(f"{server.url}/v2/tool/manifests/{DIGEST}")
    assert by_digest.headers["cache-control"] == IMMUTABLE
    missing = httpx.get(f"{server.url}/v2/nowhere/manifests/1")
    assert (missing.status_code, missing.headers["cache-control"]) == (404, NOT_SHARED)
    primary.answers["/v2/new/down/manifests/1"] = lambda _: WerkzeugResponse("", 500)
    assert httpx.get(f"{server.url}/v2/down/manifests/1").headers["cache-control"] == NOT_SHARED
    # A client's own login is its own: nothing it reads is marked for the edge.
    login = {"Authorization": "Bearer client-token"}
    own = httpx.get(f"{server.url}/v2/tool/manifests/1", headers=login)
    assert "s-maxage" not in own.headers.get("cache-control", "")


def test_the_page_shows_both_registries_and_the_tags_of_both(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    primary.answers["/v2/new/tool/tags/list"] = tag_list("new/tool", ["2.0"])
    fallback.answers["/v2/old/tool/tags/list"] = tag_list("old/tool", ["1.0"])
    fallback.answers["/v2/old/legacy/tags/list"] = tag_list("old/legacy", ["0.1"])
    server = crev()
    html = {"Accept": "text/html"}
    home = httpx.get(f"{server.url}/", headers=html).text
    assert (
        f"<code>{primary.host}/new/NAME</code>, then <code>{fallback.host}/old/NAME</code>" in home
    )
    page = httpx.get(f"{server.url}/tool", headers=html)
    assert page.status_code == 200
    assert f"<code>{primary.host}/new/tool</code>" in page.text
    assert f"what is not there yet from <code>{fallback.host}/old/tool</code>" in page.text
    assert "Tags (2)" in page.text
    assert ":2.0</code>" in page.text and ":1.0</code>" in page.text
    legacy = httpx.get(f"{server.url}/legacy", headers=html)
    assert legacy.status_code == 200 and ":0.1</code>" in legacy.text
    assert httpx.get(f"{server.url}/nowhere", headers=html).status_code == 404


def test_referrers_unknown_to_the_primary_are_asked_of_the_fallback(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    index = {"schemaVersion": 2, "manifests": []}
    fallback.answers[f"/v2/old/tool/referrers/{DIGEST}"] = lambda _: WerkzeugResponse(
        json.dumps(index), headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}
    )
    answer = httpx.get(f"{crev().url}/v2/tool/referrers/{DIGEST}?artifactType=x%2Fy")
    assert (answer.status_code, answer.json()) == (200, index)
    assert fallback.asked() == [("GET", f"/v2/old/tool/referrers/{DIGEST}?artifactType=x%2Fy")]


def test_a_head_of_a_tag_list_has_the_union_s_head(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    primary.answers["/v2/new/tool/tags/list"] = tag_list("new/tool", ["2"])
    fallback.answers["/v2/old/tool/tags/list"] = tag_list("old/tool", ["1"])
    server = crev()
    whole = httpx.get(f"{server.url}/v2/tool/tags/list")
    head = httpx.head(f"{server.url}/v2/tool/tags/list")
    assert head.status_code == 200
    assert head.headers["content-length"] == whole.headers["content-length"]
    assert head.content == b""


def test_a_tag_list_page_linked_elsewhere_is_not_followed(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    primary.answers["/v2/new/tool/tags/list"] = tag_list(
        "new/tool", ["1"], '<https://elsewhere.example/v2/new/tool/tags/list?last=1>; rel="next"'
    )
    answer = httpx.get(f"{crev().url}/v2/tool/tags/list")
    assert answer.status_code == 502
    assert "links its tag list's next page elsewhere" in answer.json()["errors"][0]["message"]


def test_on_a_route_with_server_side_credentials_a_fallback_refusal_has_no_challenge(
    start_crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn
) -> None:
    realm = fallback.server.url_for("/token")
    fallback.server.expect_request("/token").respond_with_json({"token": "anonymous"})
    fallback.answers["/v2/old/secret/manifests/1"] = lambda _: WerkzeugResponse(
        '{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}',
        401,
        {"Content-Type": "application/json", "WWW-Authenticate": f'Bearer realm="{realm}"'},
    )
    server = start_crev(
        registry_host=primary.host,
        registry_scheme="http",
        repo_prefix="new",
        upstream_token="server-side",
        fallback_registry_host=fallback.host,
        fallback_registry_scheme="http",
        fallback_repo_prefix="old",
    )
    answer = httpx.get(f"{server.url}/v2/secret/manifests/1")
    assert answer.status_code == 401, answer.text
    assert "www-authenticate" not in answer.headers
    # The primary's token went to the primary alone; the fallback got its own anonymous one.
    sent = [request for request, _ in fallback.server.log if "manifests" in request.path]
    assert [request.headers.get("Authorization") for request in sent] == [None, "Bearer anonymous"]
    (primary_sent,) = [request for request, _ in primary.server.log if "manifests" in request.path]
    assert primary_sent.headers["Authorization"] == "Bearer server-side"


@pytest.mark.parametrize(
    "path",
    ["/v2/..%2Fother/manifests/1", "/v2/tool%2F..%2Fx/manifests/1", "/v2/Tool/manifests/1"],
)
def test_a_name_outside_the_grammar_reaches_neither_upstream(
    crev: Callable[..., CrevServer], primary: StandIn, fallback: StandIn, path: str
) -> None:
    server = crev()
    with httpx.Client() as client:
        answer = client.send(client.build_request("GET", f"{server.url}{path}"))
    assert 400 <= answer.status_code < 500
    assert (primary.asked(), fallback.asked()) == ([], [])
