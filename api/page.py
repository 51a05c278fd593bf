"""Vercel function for people: the HTML page a browser gets at the vanity domain."""

from crev.page import serve_page
from crev.process import Process
from crev.wire.handler import FunctionHandler


class handler(FunctionHandler):  # noqa: N801 - Vercel looks for this name
    function = staticmethod(serve_page)
    # This function's composition root: what its process keeps between requests.
    process = Process()
