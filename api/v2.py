"""Vercel function for the registry API: `vercel.json` rewrites `/v2/...` here."""

from crev.handler import RegistryHandler


class handler(RegistryHandler):  # noqa: N801 - Vercel looks for this name
    pass
