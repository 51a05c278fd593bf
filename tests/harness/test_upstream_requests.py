"""The shared client-test check that a refusal shows no proxy failure
(tests/support/upstream_requests.py): a 500, 502 or 504 counts only as a number of its own."""

from __future__ import annotations

import pytest

from tests.support.upstream_requests import names_a_proxy_error


@pytest.mark.parametrize(
    "message",
    [
        "received unexpected HTTP status: 502 Bad Gateway",
        "unexpected status code 500",
        "reading manifest: 504 gateway timeout",
        "Internal Server Error",
    ],
)
def test_a_proxy_failure_is_seen(message: str) -> None:
    assert names_a_proxy_error(message)


@pytest.mark.parametrize(
    "message",
    [
        # ctr and podman name crev by its address; an ephemeral port may start with 500-504.
        'msg="trying next host" host="127.0.0.1:50281" error="pull access denied"',
        "127.0.0.1:50400/private/secret:1: unauthorized: authentication required",
        "layer of 5020 bytes",
        'time="2026-12-04t02:41:15z" denied: requested access to the resource is denied',
    ],
)
def test_a_port_or_a_longer_number_is_not_a_proxy_failure(message: str) -> None:
    assert not names_a_proxy_error(message)
