"""crev: a container-registry reverse proxy that serves a vanity domain's names from an upstream."""
