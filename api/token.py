"""Vercel function for the token endpoint (`/api/token`), the realm crev's challenges name."""

from crev.process import Process
from crev.token_endpoint import serve_token
from crev.wire.handler import FunctionHandler


class handler(FunctionHandler):  # noqa: N801 - Vercel looks for this name
    function = staticmethod(serve_token)
    # This function's composition root: what its process keeps between requests.
    process = Process()
