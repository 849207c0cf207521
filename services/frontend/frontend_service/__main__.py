"""Command line of the frontend.

python -m frontend_service serve     # the server (same command in images and `make run`)
"""

from __future__ import annotations

import argparse
import sys

from frontend_service.settings import FrontendSettings
from servicekit.server import serve_settings
from servicekit.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frontend_service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server")
    parser.parse_args(argv)

    settings = load_settings(FrontendSettings)
    serve_settings("frontend_service.main:create_app", settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
