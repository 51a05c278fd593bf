"""A test CA for TLS upstreams on 127.0.0.1: the server contexts it signs, and the client
contexts that trust it."""

from __future__ import annotations

import ssl

import trustme


class LocalCA:
    """A fresh CA, the server contexts it signs and the client contexts that trust it."""

    def __init__(self) -> None:
        self._ca = trustme.CA()

    def server_context(self, hostname: str = "127.0.0.1") -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert(hostname).configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context
