"""Vercel function for people: the HTML page a browser gets at the vanity domain."""

from crev.handler import PageHandler


class handler(PageHandler):  # noqa: N801 - Vercel looks for this name
    pass
