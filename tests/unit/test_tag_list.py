"""Reading an upstream's whole tag list (crev/tag_list.py), against a stand-in that pages it:
followed to its end on the same list, and cut, with the reason, where crev stops."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from crev.errors import UpstreamError
from crev.names import Namespace, RepositoryName
from crev.scope import Scope
from crev.tag_list import MAX_TAG_LIST_PAGES, NotATagList, TagList, read_tag_list, tag_names
from crev.upstream import Upstream
from crev.urls import Origin

TAGS = "/v2/acme/tool/tags/list"
PULL = (Scope.repository(RepositoryName("acme/tool"), "pull"),)


def test_tag_names() -> None:
    assert tag_names(b'{"name":"x","tags":["1",2,"b"]}') == ["1", "b"]
    assert tag_names(b'{"name":"x","tags":null}') == []
    for body in (b"nope", b'{"tags":"1"}'):
        with pytest.raises(UpstreamError):
            tag_names(body)


def read(server: HTTPServer) -> TagList | NotATagList:
    upstream = Upstream(Origin("http", f"127.0.0.1:{server.port}"), Namespace("acme"), timeout=5)
    return read_tag_list(upstream, upstream.url(TAGS), PULL)


def test_every_page_is_read_in_order(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAGS, query_string="last=2").respond_with_json({"tags": ["3"]})
    httpserver.expect_request(TAGS).respond_with_json(
        {"tags": ["1", "2"]}, headers={"Link": f'<{TAGS}?last=2>; rel="next"'}
    )
    assert read(httpserver) == TagList(["1", "2", "3"])


@pytest.mark.parametrize(
    ("link", "cut"),
    [
        ('<http://elsewhere.example/v2/acme/tool/tags/list?last=1>; rel="next"', "elsewhere"),
        ('<unterminated; rel="next"', "sent a malformed header"),
        (f'<{TAGS}?n=1>; rel="next"', f"has more than {MAX_TAG_LIST_PAGES} pages of tags"),
    ],
    ids=["elsewhere", "malformed", "endless"],
)
def test_where_crev_stops_it_says_why_with_what_it_read(
    httpserver: HTTPServer, link: str, cut: str
) -> None:
    httpserver.expect_request(TAGS).respond_with_json({"tags": ["1"]}, headers={"Link": link})
    listed = read(httpserver)
    assert isinstance(listed, TagList)
    assert listed.tags[0] == "1" and listed.cut is not None
    assert f"upstream 127.0.0.1:{httpserver.port} " in listed.cut
    assert cut in listed.cut


def test_an_answer_that_is_no_list_is_handed_back_unread(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAGS).respond_with_json({"errors": []}, status=404)
    listed = read(httpserver)
    assert isinstance(listed, NotATagList)
    assert listed.answer.status == 404
    assert str(listed.request.url) == f"http://127.0.0.1:{httpserver.port}{TAGS}"
    listed.answer.release()
