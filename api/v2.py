"""Vercel function for the registry API: `vercel.json` rewrites `/v2/...` here."""

from crev.process import Process
from crev.proxy import serve_registry
from crev.wire.handler import FunctionHandler


class handler(FunctionHandler):  # noqa: N801 - Vercel looks for this name
    function = staticmethod(serve_registry)
    # This function's composition root: what its process keeps between requests.
    process = Process()
