"""`python -m crev`: serve crev locally."""

from __future__ import annotations

import argparse
import os
import sys

from .config import ConfigError, Settings
from .log import configure_logging, crev_log
from .server import create_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crev", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"crev: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging()
    server = create_server(args.host, args.port)
    host, port = server.server_address[:2]
    routes = "\n".join(f"  {route.describe()}" for route in settings.routes.routes)
    print(
        f"crev serving on http://{host}:{port}\n{routes}\n"
        f"  pull: skopeo inspect --tls-verify=false docker://{host}:{port}/NAME:TAG\n"
        f"        docker pull {host}:{port}/NAME:TAG   (localhost registries need no TLS)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        crev_log().info("stopping")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
