"""`host[:port]` values, as configured for an upstream and as clients send in `Host`."""

from __future__ import annotations

from urllib.parse import urlsplit


def is_valid_host(host: str) -> bool:
    """A host name or IP literal with an optional numeric port, and nothing else."""
    if not host or host.endswith(":") or not all(0x20 < ord(char) < 0x7F for char in host):
        return False
    if any(char in host for char in "/?#@\\%"):
        return False
    try:
        parts = urlsplit("//" + host)
        port = parts.port
    except ValueError:
        return False
    has_port_text = ":" in host.rsplit("]", 1)[-1]
    return parts.netloc == host and bool(parts.hostname) and (port is not None) == has_port_text


def is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a valid host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and is_valid_host(parts.netloc)
