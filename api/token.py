"""Vercel function for the token endpoint (`/api/token`), the realm crev's challenges name."""

from crev.handler import TokenHandler


class handler(TokenHandler):  # noqa: N801 - Vercel looks for this name
    pass
