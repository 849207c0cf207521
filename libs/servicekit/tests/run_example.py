"""Runs the example service as a real process, the way every service's `serve` command does.

python run_example.py PORT DRAIN_SECONDS [WORKERS]   (DATABASE_URL and such from the environment;
UNIX_SOCKET, a path: listen on a Unix socket there too)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from servicekit.server import serve

if __name__ == "__main__":
    serve(
        "example_service:create_app",
        host="127.0.0.1",
        port=int(sys.argv[1]),
        drain_seconds=float(sys.argv[2]),
        workers=int(sys.argv[3]) if len(sys.argv) > 3 else 1,
        unix_socket=Path(os.environ["UNIX_SOCKET"]) if os.environ.get("UNIX_SOCKET") else None,
    )
