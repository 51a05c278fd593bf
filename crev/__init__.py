"""crev: a container-registry reverse proxy that serves a vanity domain's names from an upstream."""

# As pyproject.toml says (checked by tests/handler/test_cli.py); `python -m crev --version`.
__version__ = "0.1.0"
