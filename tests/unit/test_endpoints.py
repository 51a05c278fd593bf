"""The `/v2/` API surface parsed from raw request paths: which endpoint a path names, what it
is refused with, the path it has upstream, and the methods each endpoint serves."""

from __future__ import annotations

import pytest

from crev.endpoints import (
    MAX_PATH_LENGTH,
    READ_METHODS,
    Endpoint,
    Kind,
    UploadSession,
    check_method,
    parse_endpoint,
)
from crev.names import Digest, Namespace, RepositoryName, Tag
from tests.support.refusals import refused

DIGEST = "sha256:" + "0123456789abcdef" * 4
HEX = DIGEST.removeprefix("sha256:")
ACME = Namespace("acme")


def name(text: str) -> RepositoryName:
    return RepositoryName(text)


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/v2", Endpoint(Kind.BASE)),
        ("/v2/", Endpoint(Kind.BASE)),
        ("/v2/tool/manifests/1", Endpoint(Kind.MANIFEST, name("tool"), Tag("1"))),
        ("/v2/tool/manifests/latest", Endpoint(Kind.MANIFEST, name("tool"), Tag("latest"))),
        ("/v2/tool/manifests/" + DIGEST, Endpoint(Kind.MANIFEST, name("tool"), Digest(DIGEST))),
        (
            "/v2/tool/manifests/sha256%3A" + HEX,
            Endpoint(Kind.MANIFEST, name("tool"), Digest(DIGEST)),
        ),
        (
            "/v2/tool/manifests/sha256%3a" + HEX,
            Endpoint(Kind.MANIFEST, name("tool"), Digest(DIGEST)),
        ),
        ("/v2/tool/manifests/%41", Endpoint(Kind.MANIFEST, name("tool"), Tag("A"))),
        ("/v2/tool/blobs/" + DIGEST, Endpoint(Kind.BLOB, name("tool"), Digest(DIGEST))),
        ("/v2/tool/blobs/sha256%3A" + HEX, Endpoint(Kind.BLOB, name("tool"), Digest(DIGEST))),
        ("/v2/tool/tags/list", Endpoint(Kind.TAGS, name("tool"))),
        ("/v2/tool/referrers/" + DIGEST, Endpoint(Kind.REFERRERS, name("tool"), Digest(DIGEST))),
        ("/v2/a/b/c/manifests/v1", Endpoint(Kind.MANIFEST, name("a/b/c"), Tag("v1"))),
        ("/v2/a/b/tags/list", Endpoint(Kind.TAGS, name("a/b"))),
        (
            "/v2/a.b/c_d/e--f/blobs/" + DIGEST,
            Endpoint(Kind.BLOB, name("a.b/c_d/e--f"), Digest(DIGEST)),
        ),
        # Names made of the route words themselves.
        ("/v2/x/manifests/manifests/1", Endpoint(Kind.MANIFEST, name("x/manifests"), Tag("1"))),
        ("/v2/manifests/manifests/1", Endpoint(Kind.MANIFEST, name("manifests"), Tag("1"))),
        ("/v2/tags/tags/list", Endpoint(Kind.TAGS, name("tags"))),
        ("/v2/x/tags/list/tags/list", Endpoint(Kind.TAGS, name("x/tags/list"))),
        ("/v2/blobs/manifests/blobs", Endpoint(Kind.MANIFEST, name("blobs"), Tag("blobs"))),
        ("/v2/a/blobs/manifests/b", Endpoint(Kind.MANIFEST, name("a/blobs"), Tag("b"))),
        ("/v2/catalog/manifests/1", Endpoint(Kind.MANIFEST, name("catalog"), Tag("1"))),
        ("/v2/x/manifests/" + "a" * 128, Endpoint(Kind.MANIFEST, name("x"), Tag("a" * 128))),
    ],
)
def test_parse_endpoint(path: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(path) == endpoint


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/_catalog", "the catalog is not served by this registry"),
        ("", "'' is not a registry API path"),
        ("/", "'/' is not a registry API path"),
        ("/v1/", "'/v1/' is not a registry API path"),
        ("/v2x", "'/v2x' is not a registry API path"),
        ("/V2/", "'/V2/' is not a registry API path"),
        ("v2/tool/manifests/1", "'v2/tool/manifests/1' is not a registry API path"),
        ("/api/token", "'/api/token' is not a registry API path"),
        ("/v2/tool", "'/v2/tool' is not a registry API endpoint this proxy serves"),
        ("/v2/tool/", "'/v2/tool/' is not a registry API endpoint this proxy serves"),
        (
            "/v2/tool/manifests",
            "'/v2/tool/manifests' is not a registry API endpoint this proxy serves",
        ),
        ("/v2/manifests/1", "'/v2/manifests/1' is not a registry API endpoint this proxy serves"),
        ("/v2/tags/list", "'/v2/tags/list' is not a registry API endpoint this proxy serves"),
        (
            "/v2/tool/manifests/1/",
            "'/v2/tool/manifests/1/' is not a registry API endpoint this proxy serves",
        ),
        (
            "/v2/tool/tags/list/",
            "'/v2/tool/tags/list/' is not a registry API endpoint this proxy serves",
        ),
        (
            "/v2/tool/tags/lists",
            "'/v2/tool/tags/lists' is not a registry API endpoint this proxy serves",
        ),
        (
            "/v2/blobs/uploads/",
            "'/v2/blobs/uploads/' is not a registry API endpoint this proxy serves",
        ),
        (
            "/v2/tool/blobs/uploads/u/",
            "'/v2/tool/blobs/uploads/u/' is not a registry API endpoint this proxy serves",
        ),
        (
            "/v2/tool/blobs/uploads//",
            "'/v2/tool/blobs/uploads//' is not a registry API endpoint this proxy serves",
        ),
        (
            "/v2/tool/Manifests/1",
            "'/v2/tool/Manifests/1' is not a registry API endpoint this proxy serves",
        ),
        ("/v2/_catalog/", "'/v2/_catalog/' is not a registry API endpoint this proxy serves"),
        ("/v2//", "'/v2//' is not a registry API endpoint this proxy serves"),
    ],
)
def test_unsupported_routes(path: str, message: str) -> None:
    with refused() as refusal:
        parse_endpoint(path)
    assert refusal.status == 404
    assert refusal.code == "UNSUPPORTED"
    assert refusal.message == message


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../manifests/1",
        "/v2/./manifests/1",
        "/v2/a/../b/manifests/1",
        "/v2/a/../../etc/passwd/blobs/" + DIGEST,
        "/v2/a%2Fb/manifests/1",
        "/v2/a%2fb/manifests/1",
        "/v2/%2e%2e/manifests/1",
        "/v2/acme%2F..%2Fother/tags/list",
        "/v2/Tool/manifests/1",
        "/v2/a\\b/manifests/1",
        "/v2/\u0430/manifests/1",
        "/v2/_catalog/tags/list",
        "/v2/a b/tags/list",
        "/v2/" + "a" * 256 + "/manifests/1",
    ],
)
def test_invalid_names(path: str) -> None:
    with refused() as refusal:
        parse_endpoint(path)
    assert refusal.status == 400
    assert refusal.code == "NAME_INVALID"


@pytest.mark.parametrize(
    "path",
    [
        "/v2//manifests/1",
        "/v2/a//b/manifests/1",
        "/v2//a/manifests/1",
        "/v2/a//tags/list",
        "/v2///blobs/" + DIGEST,
    ],
)
def test_empty_path_segments(path: str) -> None:
    with refused() as refusal:
        parse_endpoint(path)
    assert refusal.status == 400
    assert refusal.code == "NAME_INVALID"
    assert refusal.message == f"invalid repository name in {path!r}: empty path segment"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v2/tool/manifests/", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/.x", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/%2e%2e", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/a%2Fb", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/" + "a" * 129, 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/sha256:abc", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/a%00", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/blobs/latest", 400, "DIGEST_INVALID"),
        ("/v2/tool/blobs/uploads", 400, "DIGEST_INVALID"),
        ("/v2/tool/blobs/sha256:" + "A" * 64, 400, "DIGEST_INVALID"),
        ("/v2/tool/referrers/latest", 400, "DIGEST_INVALID"),
        ("/v2/tool/referrers/", 400, "DIGEST_INVALID"),
    ],
)
def test_invalid_references(path: str, status: int, code: str) -> None:
    # A manifest reference that is no tag or digest is a 404, as the distribution registry and
    # the OCI conformance suite have it; a malformed digest elsewhere is a 400.
    with refused() as refusal:
        parse_endpoint(path)
    assert (refusal.status, refusal.code) == (status, code)


def test_path_length_limit() -> None:
    prefix = "/v2/tool/manifests/"
    at_limit = prefix + "a" * (MAX_PATH_LENGTH - len(prefix))
    assert len(at_limit) == MAX_PATH_LENGTH
    # Within the limit the path is parsed (and the over-long tag names no manifest).
    with refused() as refusal:
        parse_endpoint(at_limit)
    assert (refusal.status, refusal.code) == (404, "MANIFEST_UNKNOWN")
    with refused() as refusal:
        parse_endpoint(at_limit + "a")
    assert refusal.status == 414
    assert refusal.code == "NAME_INVALID"
    assert refusal.message == f"request path is over {MAX_PATH_LENGTH} characters"


def test_over_long_path_refused_before_route_checks() -> None:
    with refused() as refusal:
        parse_endpoint("/x" * 5000)
    assert refusal.status == 414


# --- Endpoint.upstream_path -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "namespace", "upstream"),
    [
        ("/v2", ACME, "/v2/"),
        ("/v2/", ACME, "/v2/"),
        ("/v2/tool/manifests/1", ACME, "/v2/acme/tool/manifests/1"),
        ("/v2/tool/manifests/sha256%3A" + HEX, ACME, f"/v2/acme/tool/manifests/{DIGEST}"),
        ("/v2/tool/blobs/" + DIGEST, ACME, f"/v2/acme/tool/blobs/{DIGEST}"),
        ("/v2/tool/tags/list", ACME, "/v2/acme/tool/tags/list"),
        ("/v2/tool/referrers/" + DIGEST, ACME, f"/v2/acme/tool/referrers/{DIGEST}"),
        ("/v2/a/b/manifests/v1", ACME, "/v2/acme/a/b/manifests/v1"),
        ("/v2/x/manifests/manifests/1", ACME, "/v2/acme/x/manifests/manifests/1"),
        ("/v2/tool/manifests/1", Namespace("org/team"), "/v2/org/team/tool/manifests/1"),
        ("/v2/tool/manifests/1", Namespace(""), "/v2/tool/manifests/1"),
        ("/v2/tool/tags/list", Namespace(""), "/v2/tool/tags/list"),
    ],
)
def test_upstream_path(path: str, namespace: Namespace, upstream: str) -> None:
    assert parse_endpoint(path).upstream_path(namespace) == upstream


def test_upstream_path_refuses_names_too_long_under_the_prefix() -> None:
    endpoint = parse_endpoint("/v2/" + "a" * 251 + "/manifests/1")
    with refused() as refusal:
        endpoint.upstream_path(ACME)
    assert (refusal.status, refusal.code) == (400, "NAME_INVALID")
    assert parse_endpoint("/v2/" + "a" * 250 + "/tags/list").upstream_path(ACME) == (
        "/v2/acme/" + "a" * 250 + "/tags/list"
    )


def test_endpoint_without_name_is_base() -> None:
    assert Endpoint(Kind.MANIFEST).upstream_path(ACME) == "/v2/"


def test_read_methods() -> None:
    assert frozenset(READ_METHODS) == {"GET", "HEAD"}


# --- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "endpoint", "upstream"),
    [
        (
            "/v2/tool/blobs/uploads/",
            Endpoint(Kind.UPLOAD_START, name("tool")),
            "/v2/acme/tool/blobs/uploads/",
        ),
        (
            "/v2/a/b/blobs/uploads/",
            Endpoint(Kind.UPLOAD_START, name("a/b")),
            "/v2/acme/a/b/blobs/uploads/",
        ),
        (
            "/v2/tool/blobs/uploads/0f8e2b4c-1d2e-4f5a-9b8c-7d6e5f4a3b2c",
            Endpoint(
                Kind.UPLOAD, name("tool"), UploadSession("0f8e2b4c-1d2e-4f5a-9b8c-7d6e5f4a3b2c")
            ),
            "/v2/acme/tool/blobs/uploads/0f8e2b4c-1d2e-4f5a-9b8c-7d6e5f4a3b2c",
        ),
        (
            "/v2/tool/blobs/uploads/AbC_d~e+f=",
            Endpoint(Kind.UPLOAD, name("tool"), UploadSession("AbC_d~e+f=")),
            "/v2/acme/tool/blobs/uploads/AbC_d~e+f=",
        ),
        (
            "/v2/x/blobs/uploads/blobs/uploads/u",
            Endpoint(Kind.UPLOAD, name("x/blobs/uploads"), UploadSession("u")),
            "/v2/acme/x/blobs/uploads/blobs/uploads/u",
        ),
        (
            "/v2/tool/blobs/uploads/" + "a" * 512,
            Endpoint(Kind.UPLOAD, name("tool"), UploadSession("a" * 512)),
            "/v2/acme/tool/blobs/uploads/" + "a" * 512,
        ),
    ],
)
def test_upload_endpoints(path: str, endpoint: Endpoint, upstream: str) -> None:
    assert parse_endpoint(path) == endpoint
    assert endpoint.upstream_path(ACME) == upstream


@pytest.mark.parametrize(
    "upload_id", ["a%2Fb", "a%2e", "a b", "a:b", "a@b", "a" * 513, "\u0430", "a\\b"]
)
def test_invalid_upload_ids(upload_id: str) -> None:
    with refused() as refusal:
        parse_endpoint("/v2/tool/blobs/uploads/" + upload_id)
    assert refusal.status == 404
    assert refusal.code == "BLOB_UPLOAD_INVALID"
    assert refusal.message == f"invalid upload id {upload_id!r}"


@pytest.mark.parametrize("upload_id", [".", ".."])
def test_dot_segment_upload_ids_are_refused(upload_id: str) -> None:
    # An upload id of dots would be a dot segment upstream, which httpx resolves
    # (`/v2/acme/x/blobs/uploads/..` is `/v2/acme/x/blobs`): the upstream would be asked another
    # resource than the one the path names.
    with refused() as refusal:
        parse_endpoint("/v2/x/blobs/uploads/" + upload_id)
    assert refusal.code == "BLOB_UPLOAD_INVALID"


@pytest.mark.parametrize(
    "path", ["/v2//blobs/uploads/", "/v2/X/blobs/uploads/", "/v2/a//b/blobs/uploads/u"]
)
def test_upload_names_are_validated(path: str) -> None:
    with refused() as refusal:
        parse_endpoint(path)
    assert (refusal.status, refusal.code) == (400, "NAME_INVALID")


# --- methods ----------------------------------------------------------------------------------

TOOL = name("tool")


@pytest.mark.parametrize(
    ("endpoint", "read_only", "push"),
    [
        (Endpoint(Kind.BASE), ["GET", "HEAD"], ["GET", "HEAD"]),
        (
            Endpoint(Kind.MANIFEST, TOOL, Tag("1")),
            ["GET", "HEAD"],
            ["GET", "HEAD", "PUT", "DELETE"],
        ),
        (Endpoint(Kind.BLOB, TOOL, Digest(DIGEST)), ["GET", "HEAD"], ["GET", "HEAD", "DELETE"]),
        (Endpoint(Kind.TAGS, TOOL), ["GET", "HEAD"], ["GET", "HEAD"]),
        (Endpoint(Kind.REFERRERS, TOOL, Digest(DIGEST)), ["GET", "HEAD"], ["GET", "HEAD"]),
        (Endpoint(Kind.UPLOAD_START, TOOL), [], ["POST"]),
        (Endpoint(Kind.UPLOAD, TOOL, UploadSession("u")), [], ["GET", "PATCH", "PUT", "DELETE"]),
    ],
)
def test_allowed_methods(endpoint: Endpoint, read_only: list[str], push: list[str]) -> None:
    assert endpoint.allowed_methods(push=False) == read_only
    assert endpoint.allowed_methods(push=True) == push
    for method in read_only:
        check_method(endpoint, method, push=False)
    for method in push:
        check_method(endpoint, method, push=True)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH", "OPTIONS", "get"])
def test_read_only_refuses_writes(method: str) -> None:
    with refused() as refusal:
        check_method(Endpoint(Kind.MANIFEST, TOOL, Tag("1")), method, push=False)
    assert refusal.status == 405
    assert refusal.code == "UNSUPPORTED"
    assert refusal.message == f"{method} is not served: this registry is read-only"
    assert refusal.headers == [("Allow", "GET, HEAD")]


def test_read_only_upload_start_allows_nothing() -> None:
    with refused() as refusal:
        check_method(Endpoint(Kind.UPLOAD_START, TOOL), "POST", push=False)
    assert refusal.status == 405
    assert refusal.message == "POST is not served: this registry is read-only"
    # RFC 9110: Allow lists what the target resource supports, which here is nothing.
    assert refusal.headers == [("Allow", "")]


def test_push_refuses_methods_an_endpoint_does_not_serve() -> None:
    with refused() as refusal:
        check_method(Endpoint(Kind.TAGS, TOOL), "PUT", push=True)
    assert refusal.status == 405
    assert refusal.message == "PUT is not served on tags endpoints"
    assert refusal.headers == [("Allow", "GET, HEAD")]
    with refused() as refusal:
        check_method(Endpoint(Kind.UPLOAD, TOOL, UploadSession("u")), "HEAD", push=True)
    assert refusal.message == "HEAD is not served on upload endpoints"
    assert refusal.headers == [("Allow", "GET, PATCH, PUT, DELETE")]


@pytest.mark.parametrize(
    "endpoint", [Endpoint(Kind.UPLOAD_START, TOOL), Endpoint(Kind.UPLOAD, TOOL, UploadSession("u"))]
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_405_always_carries_allow(endpoint: Endpoint, method: str) -> None:
    # RFC 9110 section 15.5.6: a 405 MUST carry Allow, even when it is empty because a
    # read-only crev serves no method on upload endpoints.
    with refused() as refusal:
        check_method(endpoint, method, push=False)
    assert refusal.status == 405
    assert [name for name, _ in refusal.headers] == ["Allow"]
