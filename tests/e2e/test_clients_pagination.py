"""Tag pagination through `python -m crev`, followed by `oras` and `python-dxf`.

Debian's registry ignores `n=` and sends no `Link`, so the upstream here is a stand-in that
paginates as the distribution spec says (``tests.support.paginating_upstream``), once anonymous
and once behind a token challenge. crev must show each `Link` under the vanity name, or a client
following it would ask crev for `acme/acme/many`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import oras.client
import pytest
from dxf import DXF, DXFBase
from requests import Response

from rig.crev_process import CrevProcess, run_crev, serving_acme
from rig.tls_front import TlsFront, tls_front
from tests.support.paginating_upstream import PaginatingUpstream, paginating_upstream
from tests.support.upstream_requests import ask_crev_for_a_token

TAGS = [f"tag-{i:03d}" for i in range(35)]
PAGE_SIZE = 10
LIST_PATH = "/v2/acme/many/tags/list"


@dataclass
class Setup:
    upstream: PaginatingUpstream
    crev: CrevProcess
    front: TlsFront


@pytest.fixture(scope="module", params=["anonymous", "token"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp(f"pagination-{request.param}")
    with (
        paginating_upstream(
            "acme/many", TAGS, page_size=PAGE_SIZE, token_auth=request.param == "token"
        ) as upstream,
        run_crev(workdir / "crev", **serving_acme(upstream.host)) as crev,
        tls_front(crev.host, workdir / "front") as front,
    ):
        yield Setup(upstream, crev, front)


def check_upstream_requests(setup: Setup) -> None:
    """Only prefixed names reached the stand-in; behind a challenge, crev asked its realm for
    the mapped scope only."""
    paths = {r.path for r in setup.upstream.requests()}
    assert paths <= {"/v2/", "/token", LIST_PATH}, paths
    token_requests = [r for r in setup.upstream.requests() if r.path == "/token"]
    if not setup.upstream.token_auth:
        assert token_requests == []
        return
    if not token_requests:
        # The client's token came from the one the realm gave an earlier anonymous request of
        # this module (crev/upstream/anonymous_token.py): asked again, it still reaches no realm.
        ask_crev_for_a_token(setup.crev, [("scope", "repository:many:pull")])
        assert [r for r in setup.upstream.requests() if r.path == "/token"] == []
        return
    scopes = {scope for r in token_requests for scope in r.query.get("scope", [])}
    assert scopes == {"repository:acme/many:pull"}


def test_crev_shows_next_links_under_the_vanity_name(setup: Setup) -> None:
    headers = {}
    if setup.upstream.token_auth:
        challenge = httpx.get(f"{setup.crev.url}/v2/many/tags/list")
        assert challenge.status_code == 401
        assert 'scope="repository:many:pull"' in challenge.headers["WWW-Authenticate"]
        token = httpx.get(
            f"{setup.crev.url}/api/token", params={"scope": "repository:many:pull"}
        ).json()["token"]
        headers["Authorization"] = f"Bearer {token}"
    response = httpx.get(f"{setup.crev.url}/v2/many/tags/list", params={"n": 10}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"name": "many", "tags": TAGS[:10]}
    assert response.headers["Link"] == '</v2/many/tags/list?n=10&last=tag-009>; rel="next"'
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_oras_follows_every_page(setup: Setup) -> None:
    setup.upstream.clear_log()
    client = oras.client.OrasClient(hostname=setup.crev.host, insecure=True)
    tags = client.get_tags(f"{setup.crev.host}/many")
    assert tags == TAGS
    # oras sends no n= on the first page; the stand-in's default page size applies.
    assert setup.upstream.served_pages() == [
        LIST_PATH,
        f"{LIST_PATH}?n=10&last=tag-009",
        f"{LIST_PATH}?n=10&last=tag-019",
        f"{LIST_PATH}?n=10&last=tag-029",
    ]
    check_upstream_requests(setup)


def anonymous_auth(dxf: DXFBase, response: Response) -> None:
    dxf.authenticate(response=response)


def test_python_dxf_follows_every_page(setup: Setup) -> None:
    setup.upstream.clear_log()
    dxf = DXF(setup.front.host, "many", auth=anonymous_auth, tlsverify=str(setup.front.ca_file))
    assert dxf.list_aliases(batch_size=7) == TAGS
    assert setup.upstream.served_pages() == [
        f"{LIST_PATH}?n=7",
        *(f"{LIST_PATH}?n=7&last=tag-{last:03d}" for last in (6, 13, 20, 27)),
    ]
    check_upstream_requests(setup)

    setup.upstream.clear_log()
    assert list(dxf.list_aliases(iterate=True)) == TAGS
    assert len(setup.upstream.served_pages()) == 4
